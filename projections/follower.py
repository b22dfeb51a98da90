"""Feeds a projection from the global event log, committing at an interval.

A projection keeps its own position (the last global log position it has
applied) in the same transaction or commit as its view, so that after a crash
at any point it resumes exactly where its last commit left it: nothing lost,
nothing applied twice. The follower only decides when to read and when to
commit; the projection owns the storage.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from archive.codec import from_msgpack_array
from archive.errors import ChatArchiveError, StoreError, StoreUnavailable
from archive.events import Recorded
from archive.health import Backoff
from archive.log_reads import LogPage
from archive.store import EventStore

from .readahead import ReadAhead

log = logging.getLogger(__name__)


class ProjectionReset(ChatArchiveError):
    """Raised by ``commit`` when the projection's storage was replaced under it
    (a rebuild swapped in fresh tables) or written by another runner. The projection
    has dropped its pending changes; ``position()`` says where to resume."""


class Projection(Protocol):
    """What the follower needs from a projection."""

    name: str

    def position(self) -> int:
        """The last global position committed (0 if none)."""

    def apply(self, records: Sequence[Recorded]) -> None:
        """Apply records to the pending (uncommitted) state of the view."""

    def commit(self, position: int) -> None:
        """Atomically make pending changes durable together with ``position``."""

    def discard(self) -> None:
        """Drop pending (uncommitted) changes: ``position()`` is where to resume."""


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a page (decoding and applying it, or committing it): a
    page allocates objects by the thousand (lines, documents, rows, the model's changes) that die young
    or are not cyclic, and a collection every few hundred allocations cost a tenth to a sixth of a
    projection's time (cycles wait for the next collection, at most a page later). The switch is the
    process's: in ``up`` other threads' cycles wait too, for as long as a commit waits for its database
    (reading the next page is outside). A collector already off stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class LogFollower:
    """Reads the log after a projection's position and applies it in pages.

    ``commit_interval`` bounds how long applied records stay uncommitted and
    ``max_pending`` how many (so a long backlog does not pile up in memory; a function of the last
    commit's position where the number changes along the log);
    ``idle_sleep`` is how long to wait when the log has nothing new.

    A ``StoreUnavailable`` (the log or the view's database unreachable, locked, full)
    does not end ``run``: it is reported to ``on_error`` (the message; None once
    the projection makes progress again) and retried with back-off, resuming from
    the last commit if a page was applied only in part.
    """

    def __init__(
        self,
        store: EventStore,
        projection: Projection,
        *,
        commit_interval: float,
        page_size: int = 1000,
        idle_sleep: float = 0.05,
        max_pending: int | Callable[[int], int] = 50_000,
        on_progress: Callable[[int], None] | None = None,
        on_error: Callable[[str | None], None] | None = None,
    ):
        self.store = store
        self.projection = projection
        self.commit_interval = commit_interval
        self.page_size = page_size
        self.idle_sleep = idle_sleep
        self.max_pending = max_pending
        self.on_progress = on_progress
        self.on_error = on_error
        self._failing = False
        self._applied = projection.position()
        self._committed = self._applied
        self._applied_since_commit = 0
        self._torn = False
        self._replaced = False  # set by another thread (``replaced``), read by this follower's

    @property
    def applied_position(self) -> int:
        return self._applied

    def catch_up(self) -> int:
        """Apply everything in the log now and commit; returns the position reached. The log is read
        ahead (``readahead``). A commit that finds the projection reset reads on from where
        the projection is, the last commit included; one reset to the same place twice is storage lost
        under it, not a rebuild swapped in (``StoreError``: catching up again would never end)."""
        reset_to = None
        while True:
            self._read_to_end()
            reached = self._applied
            self._commit()
            if self._applied == reached:
                return reached
            if self._applied == reset_to:
                raise StoreError(
                    f"projection {self.projection.name}: its storage was reset to position {reset_to} twice "
                    "while catching up (lost or replaced under it); rebuild it"
                )
            reset_to = self._applied

    def _read_to_end(self) -> None:
        ahead = ReadAhead(self.store, self._applied, self.page_size)
        try:
            while True:
                if ahead.after != self._applied:  # a commit found the projection reset: read from there
                    ahead.close()
                    ahead = ReadAhead(self.store, self._applied, self.page_size)
                if not self._step(ahead.next):
                    break
                if self._applied_since_commit >= self._pending_limit():
                    self._commit()
        finally:
            ahead.close()

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop`` is set; commit at the interval and on stop, after one more page
        (what the writers appended just before they stopped, when a process stops them first)."""
        self._retrying(stop, self._follow)

    def _retrying(self, stop: threading.Event, follow: Callable[[threading.Event], None]) -> None:
        backoff = Backoff(first=0.2, most=10.0)
        while True:
            try:
                if self._torn:
                    self._resume_from_commit()
                follow(stop)
                return
            except StoreUnavailable as e:
                message = f"projection {self.projection.name}: {e}"
                log.warning("%s (retrying)", message)
                self._failing = True
                if self.on_error:
                    self.on_error(message)
                if stop.wait(backoff.next()):
                    return

    def replaced(self) -> None:
        """The projection's storage was replaced under this follower (a rebuild swapped in by another thread): it
        drops what it applied since its last commit and goes on from the replacement's position before its next page.
        Without it a follower idle at the log's head kept the replaced view's position, and the events appended
        between the rebuild's last read and its swap were missing from the new view until the next event came."""
        self._replaced = True

    def _resume_from_commit(self) -> None:
        """A page was applied in part: drop it and go on from the last commit."""
        self.projection.discard()
        self._applied = self._committed = self.projection.position()
        self._applied_since_commit = 0
        self._torn = False

    def _follow(self, stop: threading.Event) -> None:
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                if self._replaced:
                    self._replaced = False
                    self._torn = True  # until resumed: a store error meanwhile resumes it again (``_retrying``)
                    self._resume_from_commit()
                got_any = self._step()
                due = time.monotonic() - last_commit >= self.commit_interval
                if due or self._applied_since_commit >= self._pending_limit():
                    self._commit()
                    last_commit = time.monotonic()
                if not got_any:
                    stop.wait(self.idle_sleep)
            self._step()
        finally:
            if not self._torn:
                self._commit()

    def _step(self, read: Callable[[], LogPage] | None = None) -> bool:
        """Apply the next page (``read()``'s, by default read now); False at the end of the log."""
        read_page = read() if read is not None else self.store.read_log_page(self._applied, self.page_size)
        if not read_page.positions:
            return False
        with collection_paused():
            page = list(map(Recorded, read_page.positions, from_msgpack_array(read_page.states)))
            # A page that raised half-way leaves pending changes past ``_applied``:
            # committing them under the old position would apply them twice later.
            self._torn = True
            self.projection.apply(page)
            self._torn = False
        self._applied = page[-1].position
        self._applied_since_commit += len(page)
        if self.on_progress:
            self.on_progress(self._applied)
        self._well()
        return True

    def _pending_limit(self) -> int:
        limit = self.max_pending
        return limit if isinstance(limit, int) else limit(self._committed)

    def _well(self) -> None:
        if self._failing:
            self._failing = False
            log.info("projection %s works again", self.projection.name)
            if self.on_error:
                self.on_error(None)

    def _commit(self) -> None:
        if self._applied != self._committed:
            try:
                with collection_paused():
                    self.projection.commit(self._applied)
            except StoreUnavailable:
                # The commit may have happened although its answer was lost: resume from the
                # position the view holds (``_retrying``), never commit the same changes twice.
                self._torn = True
                raise
            except ProjectionReset as e:
                log.warning("projection %s: %s", self.projection.name, e)
                self._applied = self._committed = self.projection.position()
            else:
                self._committed = self._applied
                self._well()
        self._applied_since_commit = 0
