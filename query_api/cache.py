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
        self._flights: dict[Hashable, _Flight] = {}

    def get_or_compute(self, key: Hashable, compute: Callable[[], V], *, keep: Callable[[V], bool] = lambda v: True) -> V:
        """The cached value for ``key``, else ``compute()``, cached if ``keep(value)``. One caller computes a
        missing key while the others asking for it wait for its value (an expired token hit by every worker
        thread at once would otherwise be looked up, and its last use written, by each); if it fails, a waiter
        computes it in turn."""
        while True:
            with self._lock:
                entry = self._entries.get(key, _MISSING)
                if entry is not _MISSING and entry[0] > self._clock():
                    return entry[1]
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight()
                    break
            flight.done.wait()
            if flight.computed:
                return flight.value
        try:
            flight.value = compute()
            flight.computed = True
            if keep(flight.value):
                self.put(key, flight.value)
            return flight.value
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

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


class _Flight:
    """One computation of a key under way, awaited by the others asking for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.computed = False
        self.value = None
