"""A listener in a thread of its own: how the processes that archive (``listen``, ``up``) run one, stop it and
learn that it crashed."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from archive.errors import ChatArchiveError
from archive.health import Health
from archive.store import EventStore
from archive.times import utcnow

from .clock import Clock
from .listener import Listener
from .settings import XmppSettings

log = logging.getLogger(__name__)


class ListenerHandle:
    """A listener running in its own thread; ``stop`` it or ``join`` it after setting the stop event."""

    def __init__(self, listener: Listener, stop: threading.Event):
        self.listener = listener
        self._stop = stop
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xmpp-listener", daemon=True)

    def _run(self) -> None:
        try:
            self.listener.run(self._stop)
        except ChatArchiveError as e:  # said in the error's own words: no traceback to read past
            log.error("the listener stopped: %s", e)
            self.error = e
        except BaseException as e:  # noqa: BLE001 - reported to whoever joins the thread
            log.exception("the listener crashed")
            self.error = e

    def start(self) -> ListenerHandle:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread; raises if the listener crashed."""
        self._thread.join(timeout)
        if self.error is not None and not self._thread.is_alive():
            raise ChatArchiveError(f"the XMPP listener stopped on an error: {self.error!r}") from self.error

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self.join(timeout)

    def joined_rooms(self) -> list[str]:
        return self.listener.joined_rooms()


def start_listener(
    settings: XmppSettings,
    store: EventStore,
    stop: threading.Event | None = None,
    *,
    status_file: Path | str | None = None,
    health: Health | None = None,
    clock: Clock = utcnow,
) -> ListenerHandle:
    """Start a listener thread that archives into ``store`` until ``stop`` is set.

    ``clock``: the listener's (its times and what it stamps live; a test's may be set off the server's).
    Raises ``LeaseHeld`` (a ``StoreError``) if another listener archives into the store."""
    listener = Listener(settings, store, status_file=status_file, health=health, clock=clock)
    listener.acquire()
    return ListenerHandle(listener, stop or threading.Event()).start()
