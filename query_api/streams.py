"""Limits on streamed answers (replay, export, follow): each holds a server thread while it runs.

At most half of ``[api] threads`` streams are open at once, so plain requests
always find a thread, and one client (a token, with its site user; an anonymous
caller by address) holds at most ``[api] streams_per_client`` of them, so one
client cannot take every slot. A stream whose client stops reading is cut off
by the server (``query_api.server``: no progress for ``[api]
stalled_client_seconds``), which gives its slot and its thread back; until then
at most waitress' output high-water mark (``OUTPUT_BUFFER_BYTES``) is buffered
for it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Hashable

from .errors import ApiError

OUTPUT_BUFFER_BYTES = 1024 * 1024


FOLLOW_POLL_SECONDS = 0.2  # how often a follow stream looks for new events, and whether it should go on


def unseen_end_seconds(heartbeat: float) -> int:
    """How long a stream whose client went away may hold its slot, at most: a server sees a closed connection when
    writing to it fails, which is the second write after the close (the first one only makes the peer answer
    with a reset). An idle follow stream writes every ``heartbeat`` seconds, and looks every
    ``FOLLOW_POLL_SECONDS`` whether waitress saw the client's end sooner (``query_api.replay``). A stream that
    is sending is past its second write at once."""
    return max(1, math.ceil(2 * heartbeat + FOLLOW_POLL_SECONDS))


class StreamSlots:
    def __init__(self, total: int, per_client: int, unseen_seconds: int = 1):
        self.total = max(1, total)
        self.per_client = max(1, per_client)
        self.unseen_seconds = unseen_seconds  # ``unseen_end_seconds``: what the 429 says a client may wait for
        self._open: Counter[Hashable] = Counter()
        self._lock = threading.Lock()

    def acquire(self, client: Hashable) -> None:
        """Take a slot for ``client``, or raise the 429/503 that says why there is none."""
        with self._lock:
            if self._open[client] >= self.per_client:
                # Counted until the server sees a stream's end: a client killed mid-stream still counts a while.
                wait = self.unseen_seconds
                raise ApiError(
                    429, "too_many_streams",
                    f"this client already has {self.per_client} streams open or closed in the last {wait} s without "
                    f"their end being seen; retry after {wait} s, or close one first",
                    headers={"Retry-After": str(wait)},
                )  # fmt: skip
            if sum(self._open.values()) >= self.total:
                raise ApiError(
                    503, "too_many_streams", "too many streams are open; try again later", headers={"Retry-After": "30"}
                )
            self._open[client] += 1

    def release(self, client: Hashable) -> None:
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def open_count(self) -> int:
        with self._lock:
            return sum(self._open.values())


def client_key(who, remote_addr: str | None) -> Hashable:
    """Whose streams count together: a token (with the site user it acts for), else an address."""
    return (who.token_id, who.user) if who.token_id is not None else ("address", remote_addr)
