"""Running projections: one ``LogFollower`` thread per projection, and their status.

``ProjectionThreads`` starts a thread per (projection, commit interval); each
follows the log until ``stop`` is set, then commits. If one fails, ``stop`` is
set for all (a process without its projections should not look healthy), and
``join()`` raises the first error. Store errors are not failures: each follower
retries them, reporting to ``health``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import msgspec

from archive.errors import ChatArchiveError
from archive.health import Health
from archive.store import EventStore

from .follower import LogFollower, Projection


class ProjectionError(ChatArchiveError):
    """A projection thread failed."""


class ProjectionStatus(msgspec.Struct, kw_only=True):
    """``lag`` is ``head - position``: global positions are not gapless on
    PostgreSQL, so it is an upper bound on the events still to apply."""

    name: str
    position: int
    head: int
    lag: int
    problem: str | None = None  # why the projection cannot be used now (it shows position 0)


class ProjectionThreads:
    """``later``: (name, make, commit interval) of projections made in their own thread before it follows the
    log, ``make`` returning the projection, or None if ``stop`` was set first (`up` rebuilding an outdated
    view from the log while the others follow and the listener captures)."""

    def __init__(
        self,
        store: EventStore,
        projections: Sequence[tuple[Projection, float]],
        stop: threading.Event,
        *,
        later: Sequence[tuple[str, Callable[[], Projection | None], float]] = (),
        on_exit=None,
        health: Health | None = None,
    ):
        self.stop = stop
        self.errors: list[BaseException] = []
        self._on_exit = on_exit
        self._store, self._health = store, health
        self.followers = [self._follower(p, interval) for p, interval in projections]
        runs = [(f.projection.name, lambda f=f: f) for f in self.followers]
        runs += [(name, lambda make=make, interval=interval: self._made(make, interval)) for name, make, interval in later]
        self.threads = [
            threading.Thread(target=self._run, args=(follower,), name=f"projection-{name}", daemon=True)
            for name, follower in runs
        ]
        for thread in self.threads:
            thread.start()

    def _follower(self, projection: Projection, interval: float) -> LogFollower:
        on_error = self._health and self._health.reporter(f"projection {projection.name}")
        return LogFollower(self._store, projection, commit_interval=interval, on_error=on_error)

    def _made(self, make: Callable[[], Projection | None], interval: float) -> LogFollower | None:
        projection = make()
        if projection is None:
            return None
        follower = self._follower(projection, interval)
        self.followers.append(follower)
        return follower

    def _run(self, follower: Callable[[], LogFollower | None]) -> None:
        try:
            made = follower()
            if made is not None:
                made.run(self.stop)
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.errors.append(e)
            self.stop.set()

    def is_alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self, timeout: float | None = None) -> None:
        """Wait for every thread (after ``stop`` is set); raise the first failure."""
        for thread in self.threads:
            thread.join(timeout)
        if not self.is_alive() and self._on_exit is not None:
            on_exit, self._on_exit = self._on_exit, None
            on_exit()
        if self.errors:
            error = self.errors[0]
            raise ProjectionError(f"projection failed: {error}") from error


def status(store: EventStore, projections: Sequence[Projection]) -> list[ProjectionStatus]:
    head = store.head()
    result = []
    for projection in projections:
        position = projection.position()
        result.append(ProjectionStatus(name=projection.name, position=position, head=head, lag=max(head - position, 0)))
    return result
