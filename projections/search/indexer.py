"""Keeps the search index near real time: follows the log, commits at an interval.

Caught up, the indexer commits (and so publishes) whatever it applied at most
``commit_interval`` seconds after applying it, however many messages arrived in
between (batching under load, bursts included). Far behind (catch-up after a
start or a rebuild: more than ``CATCH_UP_LAG`` events), it commits only every
``catch_up_interval`` seconds or ``max_pending`` messages, because every tantivy
commit costs a flush and an fsync and leaves one more segment to merge.

It also follows generation swaps made by ``chat-archive rebuild search`` in
another process: on a swap it drops its writer and continues from the new
generation's committed position.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from archive.background import Background
from archive.store import EventStore

from ..follower import LogFollower
from .projection import MAX_PENDING, SearchIndexProjection
from .purged import PurgeRebuild

CATCH_UP_INTERVAL = 5.0
CATCH_UP_LAG = 20_000  # events behind the log's head that count as catching up
PAGE_SIZE = 2000


@dataclass(frozen=True)
class CommitSchedule:
    """When the indexer commits what it has applied, a rule over times its caller reads from the clock."""

    interval: float
    catch_up_interval: float
    max_pending: int

    def due(self, pending_since: float | None, now: float, pending: int, behind: bool) -> bool:
        """``pending_since``: when the oldest change not committed was applied (None: nothing pending);
        ``behind``: catching up, far behind the log's head."""
        if pending_since is None:
            return False
        if behind:
            return now - pending_since >= self.catch_up_interval or pending >= self.max_pending
        return now - pending_since >= self.interval


class SearchIndexer(LogFollower):
    """A ``LogFollower`` whose commits follow the lag: at the interval when caught up or
    nearly (a burst), every ``catch_up_interval`` seconds (or ``max_pending`` events) when
    more than ``catch_up_lag`` events behind."""

    def __init__(
        self,
        store: EventStore,
        projection: SearchIndexProjection,
        *,
        commit_interval: float,
        page_size: int = PAGE_SIZE,
        catch_up_interval: float = CATCH_UP_INTERVAL,
        max_pending: int = MAX_PENDING,
        catch_up_lag: int = CATCH_UP_LAG,
        on_error=None,
    ):
        super().__init__(
            store,
            projection,
            commit_interval=commit_interval,
            page_size=page_size,
            idle_sleep=min(0.05, commit_interval / 5),
            max_pending=max_pending,
            on_error=on_error,
        )
        self._purge_rebuild = PurgeRebuild(store, on_error)
        if self._applied == 0:  # a first index, built from the log's start as it is followed
            projection.began_building(store.head())
        self.schedule = CommitSchedule(commit_interval, max(catch_up_interval, commit_interval), max_pending)
        self.catch_up_lag = catch_up_lag

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set; commit on stop as well (never a half-applied page), after
        one more page (what the writers appended just before they stopped).

        Store errors are retried with back-off (``LogFollower``). A rebuild a purge owes, running beside
        it, is waited for once stopped (it sees ``stop`` after its page); not when an error ends the indexer."""
        self._retrying(stop, self._index)
        self._purge_rebuild.join()

    def _index(self, stop: threading.Event) -> None:
        first_pending: float | None = None
        try:
            while not stop.is_set():
                if self.projection.stale():
                    self._resume_from_commit()  # a rebuild swapped generations: follow the new one
                    first_pending = None
                self._purge_rebuild.ensure(self.projection, stop)
                before = self._applied_since_commit
                self._step()
                full_page = self._applied_since_commit - before >= self.page_size
                behind = full_page and self.store.head() - self._applied > self.catch_up_lag
                if self._applied_since_commit and first_pending is None:
                    first_pending = time.monotonic()
                if self.schedule.due(first_pending, time.monotonic(), self._applied_since_commit, behind):
                    self._commit()
                    first_pending = None
                if not full_page:
                    stop.wait(self.idle_sleep)
            if not self.projection.stale():
                self._step()
        finally:
            if not self._torn:
                self._commit()


class IndexerThread(Background):
    """A running indexer: ``join()`` waits for it to stop and re-raises what stopped it. ``make`` builds the
    indexer in the thread (it may rebuild an unusable index first: `up` after an upgrade); None: ``stop`` was
    set meanwhile."""

    def __init__(self, make: Callable[[], SearchIndexer | None], stop: threading.Event):
        super().__init__("search-indexer")
        self._make = make
        self._stop = stop
        self.start()

    def run(self) -> None:
        indexer = self._make()
        if indexer is None:
            return
        try:
            indexer.run(self._stop)
        finally:
            indexer.projection.close()

    def stopped_by(self, error: BaseException) -> None:
        # As projections.runner does: a process whose index stopped should not look healthy.
        self._stop.set()
