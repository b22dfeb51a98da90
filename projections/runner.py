"""Running projections: one ``LogFollower`` thread per projection, and their status.

``ProjectionThreads`` starts a thread per (projection, commit interval); each
follows the log until ``stop`` is set, then commits. If one fails, ``stop`` is
set for all (a process without its projections should not look healthy), and
``join()`` raises the first error. Store errors are not failures: each follower
retries them, reporting to ``health``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

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
    def __init__(
        self,
        store: EventStore,
        projections: Sequence[tuple[Projection, float]],
        stop: threading.Event,
        *,
        on_exit=None,
        health: Health | None = None,
    ):
        self.stop = stop
        self.errors: list[BaseException] = []
        self._on_exit = on_exit
        self.followers = [
            LogFollower(store, p, commit_interval=interval, on_error=health and health.reporter(f"projection {p.name}"))
            for p, interval in projections
        ]
        self.threads = [
            threading.Thread(target=self._run, args=(f,), name=f"projection-{f.projection.name}", daemon=True)
            for f in self.followers
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, follower: LogFollower) -> None:
        try:
            follower.run(self.stop)
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
