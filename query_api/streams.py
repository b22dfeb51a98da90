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

import threading
from collections import Counter
from collections.abc import Hashable

from .errors import ApiError

OUTPUT_BUFFER_BYTES = 1024 * 1024


class StreamSlots:
    def __init__(self, total: int, per_client: int):
        self.total = max(1, total)
        self.per_client = max(1, per_client)
        self._open: Counter[Hashable] = Counter()
        self._lock = threading.Lock()

    def acquire(self, client: Hashable) -> None:
        """Take a slot for ``client``, or raise the 429/503 that says why there is none."""
        with self._lock:
            if self._open[client] >= self.per_client:
                raise ApiError(
                    429, "too_many_streams",
                    f"this client already has {self.per_client} streams open; close one first",
                    headers={"Retry-After": "10"},
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
