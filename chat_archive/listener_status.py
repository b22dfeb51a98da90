"""The listener's status as the other processes read it (`status`, the API's heartbeat of presence): the one it
keeps in the store, wherever it runs, or its status file on this host where that is the same listener's and newer."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from archive.errors import ChatArchiveError
from archive.lease import process_alive
from archive.store import EventStore
from archive.times import utcnow
from ingest.status import ListenerStatus, Liveness, assess, last_status, read_status, status_path
from projections.views import Heartbeat

from .config import Config

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_READ = 1.0  # seconds: the listener keeps its status in the store every few seconds anyway


def read_at_most_every(seconds: float, read: Callable[[], T]) -> Callable[[], T]:
    """``read``, its value kept ``seconds`` for every thread of the process (an error is not kept)."""
    lock, kept = threading.Lock(), []  # [when read, value]

    def cached() -> T:
        with lock:  # one read at a time: the others want the value it brings
            if not kept or time.monotonic() - kept[0] >= seconds:
                kept[:] = [time.monotonic(), read()]
            return kept[1]

    return cached


def listener_heartbeat(config: Config, store: EventStore | None) -> Heartbeat | None:
    """Until when the listener has watched the rooms and stored all it saw (None: not running), and since when
    it has not watched each room it is away from, from its last status (``last_listener_status``; None: none).
    A room stays away across stops until a start records its gap, so that holds while it is not running too."""
    status = last_listener_status(config, store)
    if status is None:
        return None
    running = not status.stopped and status.connected
    return Heartbeat(status.stored_until if running else None, status.rooms_away)


def last_listener_status(config: Config, store: EventStore | None) -> ListenerStatus | None:
    """The listener's last status, wherever it runs: the one it keeps in the store, or its status file on this host
    where that is the same listener's and newer (``ingest.status.latest_status``)."""
    return _listener_status_read(config, store)[0]


def _listener_status_read(config: Config, store: EventStore | None) -> tuple[ListenerStatus | None, str | None]:
    """``last_listener_status``, and why the store's could not be read (one of another version: no status; logged
    once each)."""
    try:
        in_file = read_status(status_path(config.xmpp))
    except ChatArchiveError:
        in_file = None
    if store is None:
        return in_file, None
    status, unread = last_status(in_file, store)
    if unread and unread not in _UNREAD:
        _UNREAD.add(unread)
        log.warning("%s: taken as no status", unread)
    return status, unread


_UNREAD: set[str] = set()  # the store's listener statuses this process could not read, said once each



def listener_status(config: Config, store: EventStore) -> tuple[ListenerStatus | None, Liveness | None]:
    """The listener's last status (rooms joined and refused, connection, write queue, parts' health), wherever it
    runs (``last_listener_status``), and whether it runs and keeps up (``ingest.status.assess``); liveness None
    where no listener is configured."""
    status, unread = _listener_status_read(config, store)
    if status is None and not config.xmpp.jid:
        return None, None
    liveness = assess(status, utcnow(), host=socket.gethostname(), alive=process_alive)
    liveness.problems += [unread] if unread else []
    return status, liveness
