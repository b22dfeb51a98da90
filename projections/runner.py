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
    # Why the view is being rebuilt from the log (built by older rules), while the old one still answers: None if not.
    rebuilding: str | None = None


class ProjectionThreads:
    """``later``: (name, make, commit interval) of projections made in their own thread before it follows the
    log, ``make`` returning the projection, or None if ``stop`` was set first (`up` rebuilding an outdated
    view of a layout it cannot load from the log while the others follow and the listener captures).
    ``replacing``: (name, replace) run in a thread of its own beside the follower of the projection ``name`` (of
    ``projections``), ``replace`` rebuilding it from the log and swapping it in under the follower; once it returns
    True (False: ``stop`` was set first), the follower goes on from the rebuilt one (``LogFollower.replaced``)."""

    def __init__(
        self,
        store: EventStore,
        projections: Sequence[tuple[Projection, float]],
        stop: threading.Event,
        *,
        later: Sequence[tuple[str, Callable[[], Projection | None], float]] = (),
        replacing: Sequence[tuple[str, Callable[[], bool]]] = (),
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
        followed = {f.projection.name: f for f in self.followers}
        runs += [(f"{name}-rebuild", lambda replace=replace, f=followed[name]: self._replaced(replace, f))
                 for name, replace in replacing]  # fmt: skip
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

    @staticmethod
    def _replaced(replace: Callable[[], bool], follower: LogFollower) -> None:
        if replace():
            follower.replaced()

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
