"""A small thread-safe cache whose entries expire after a fixed time."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
_MISSING = object()


class TtlCache(Generic[V]):
    """Maps keys to values for ``ttl`` seconds; holds at most ``max_entries`` (oldest dropped first)."""

    def __init__(self, ttl: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], V], *, keep: Callable[[V], bool] = lambda v: True) -> V:
        """The cached value for ``key``, else ``compute()``, cached if ``keep(value)``."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            if entry is not _MISSING and entry[0] > now:
                return entry[1]
        value = compute()
        if keep(value):
            self.put(key, value)
        return value

    def get(self, key: Hashable) -> V | None:
        """The cached value for ``key``, or None if there is none (or it expired)."""
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            return entry[1] if entry is not _MISSING and entry[0] > self._clock() else None

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
