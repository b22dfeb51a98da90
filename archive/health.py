"""How the long-running parts of a process are doing: each reports failing (why, since when) or well.

A part that meets a transient error (locked SQLite, PostgreSQL restarting, a
full disk) retries with back-off and reports it here instead of ending the
process; ``chat-archive status`` (through the listener's status file) and
``/healthz`` show it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import msgspec

from .times import utcnow


class PartHealth(msgspec.Struct, kw_only=True):
    ok: bool = True
    error: str | None = None  # the last error while failing
    since: datetime | None = None  # failing since
    attempts: int = 0  # failed attempts since then
    recovered_at: datetime | None = None  # the last recovery


class Health:
    def __init__(self):
        self._lock = threading.Lock()
        self._parts: dict[str, PartHealth] = {}

    def reporter(self, part: str) -> Callable[[str | None], None]:
        """A callback for ``part``: called with an error message while failing, with None once it works."""
        with self._lock:
            self._parts.setdefault(part, PartHealth())
        return lambda error: self.report(part, error)

    def report(self, part: str, error: str | None) -> None:
        with self._lock:
            state = self._parts.setdefault(part, PartHealth())
            if error is not None:
                since = state.since if not state.ok else utcnow()
                self._parts[part] = PartHealth(ok=False, error=error, since=since, attempts=state.attempts + 1,
                                               recovered_at=state.recovered_at)  # fmt: skip
            elif not state.ok:
                self._parts[part] = PartHealth(recovered_at=utcnow())

    def snapshot(self) -> dict[str, PartHealth]:
        with self._lock:
            return dict(self._parts)

    def failing(self) -> dict[str, PartHealth]:
        return {name: state for name, state in self.snapshot().items() if not state.ok}


class Backoff:
    """Delays between retries: doubling from ``first`` up to ``most`` seconds, back to ``first`` on success."""

    def __init__(self, first: float = 0.1, most: float = 10.0):
        self.first, self.most = first, most
        self.delay = first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self.delay = self.first
