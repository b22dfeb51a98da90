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
        if self.ttl > 0 and keep(value):
            with self._lock:
                self._entries[key] = (now + self.ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
