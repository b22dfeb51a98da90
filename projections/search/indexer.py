"""Keeps the search index near real time: follows the log, commits at an interval.

Caught up, the indexer commits (and so publishes) whatever it applied at most
``commit_interval`` seconds after applying it, however many messages arrived in
between (batching under load). Behind by more than a page (catch-up after a
start, a rebuild, a burst), it commits only every ``catch_up_interval`` seconds
or ``max_pending`` messages, because every tantivy commit costs a flush and an
fsync and leaves one more segment to merge.

It also follows generation swaps made by ``chat-archive rebuild search`` in
another process: on a swap it drops its writer and continues from the new
generation's committed position.
"""

from __future__ import annotations

import threading
import time

from archive.store import EventStore

from ..follower import ProjectionReset
from .projection import SearchIndexProjection

CATCH_UP_INTERVAL = 5.0
MAX_PENDING = 500_000
PAGE_SIZE = 2000


class SearchIndexer:
    def __init__(
        self,
        store: EventStore,
        projection: SearchIndexProjection,
        *,
        commit_interval: float,
        page_size: int = PAGE_SIZE,
        catch_up_interval: float = CATCH_UP_INTERVAL,
        max_pending: int = MAX_PENDING,
    ):
        self.store = store
        self.projection = projection
        self.commit_interval = commit_interval
        self.page_size = page_size
        self.catch_up_interval = max(catch_up_interval, commit_interval)
        self.max_pending = max_pending
        self.idle_sleep = min(0.05, commit_interval / 5)
        self._applied = self._committed = projection.position()
        self._pending = 0
        self._first_pending = 0.0

    def catch_up(self) -> int:
        """Index everything in the log now and commit; returns the position reached."""
        while self._step():
            if self._pending >= self.max_pending:
                self._commit()
        self._commit()
        return self._applied

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set; commit on stop as well.

        On an error nothing half-applied is committed: the writer rolls back and
        the next start resumes after the last commit.
        """
        while not stop.is_set():
            if self.projection.stale():
                self.projection.reopen()
                self._applied = self._committed = self.projection.position()
                self._pending = 0
            behind = self._step()
            if self._commit_due(behind):
                self._commit()
            if not behind:
                stop.wait(self.idle_sleep)
        self._commit()

    def _commit_due(self, behind: bool) -> bool:
        if not self._pending:
            return False
        waited = time.monotonic() - self._first_pending
        if behind:
            return waited >= self.catch_up_interval or self._pending >= self.max_pending
        return waited >= self.commit_interval

    def _step(self) -> bool:
        """Apply the next page; True if it was full (more is probably waiting)."""
        page = []
        for record in self.store.read_log(self._applied, page_size=self.page_size):
            page.append(record)
            if len(page) == self.page_size:
                break
        if not page:
            return False
        self.projection.apply(page)
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending += len(page)
        self._applied = page[-1].position
        return len(page) == self.page_size

    def _commit(self) -> None:
        if self._applied != self._committed:
            try:
                self.projection.commit(self._applied)
            except ProjectionReset:
                self._applied = self._committed = self.projection.position()
            else:
                self._committed = self._applied
        self._pending = 0


class IndexerThread:
    """A running indexer: ``join()`` waits for it to stop and re-raises what stopped it."""

    def __init__(self, indexer: SearchIndexer, stop: threading.Event):
        self.indexer = indexer
        self._error: BaseException | None = None
        self._stop = stop
        self._thread = threading.Thread(target=self._run, args=(stop,), name="search-indexer", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        try:
            self.indexer.run(stop)
        except BaseException as e:  # handed to whoever joins
            self._error = e
            # As projections.runner does: a process whose index stopped should not look healthy.
            self._stop.set()
        finally:
            self.indexer.projection.close()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
