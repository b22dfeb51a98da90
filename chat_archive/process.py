"""What every long-running command shares: logging, stop-on-signal, argument types."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

from archive.background import Background
from archive.errors import StoreUnavailable


def configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("slixmpp").setLevel(logging.WARNING)


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set ``stop`` (so parts can flush and commit) while inside."""
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (no upper bound if ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}")
        return value

    return parse


port_number = whole_number(0, 65535)


class Periodic(Background):
    """Run ``job`` at start and every ``interval`` seconds in a thread until ``stop`` is set, and once
    more then if ``on_stop`` (as `up` runs checkpoints and purges); ``.join()`` raises what stopped it.
    ``interval``: seconds, or a function asked for them after each run."""

    def __init__(
        self,
        name: str,
        interval: float | Callable[[], float],
        stop: threading.Event,
        job: Callable[[], object],
        *,
        on_stop: bool = False,
        on_error: Callable[[str | None], None] | None = None,
    ):
        super().__init__(name)
        self._interval, self._stop, self._job, self._on_stop = interval, stop, job, on_stop
        self._on_error = on_error  # the store unavailable: reported here, tried again at the next interval
        self.start()

    def run(self) -> None:
        self._once()
        while not self._stop.wait(self._next()):
            self._once()
        if self._on_stop:
            self._once()

    def _next(self) -> float:
        return self._interval() if callable(self._interval) else self._interval

    def stopped_by(self, error: BaseException) -> None:
        logging.getLogger(__name__).error("%s stopped: %s", self.name, error)

    def _once(self) -> None:
        try:
            self._job()
        except StoreUnavailable as e:
            logging.getLogger(__name__).warning("%s: %s (next try in %.0f s)", self.name, e, self._next())
            if self._on_error:
                self._on_error(f"{self.name}: {e}")
        else:
            if self._on_error:
                self._on_error(None)
