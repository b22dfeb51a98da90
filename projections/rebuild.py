"""Rebuilding projections from position 0 into fresh storage, then swapping it in.

The protocol any projection can implement (transcripts, presence and the
search index do)::

    class Rebuildable(Protocol):
        name: str
        def begin_rebuild(self) -> Projection: ...        # fresh, empty storage at position 0
        def finish_rebuild(self, fresh: Projection) -> None: ...  # atomically make it the live one

and optionally ``abort_rebuild(fresh)`` to throw an unfinished build away
(called when the rebuild fails or is interrupted) and ``rebuild_commit_every``,
the most events it wants applied between two commits of the fresh storage
(``COMMIT_EVERY`` if it says nothing). The live storage keeps serving queries
until ``finish_rebuild``. A fresh projection may offer
``write_in_background(writers)``: where the log is longer than one commit, its
commits are then written by a writer process (``projections.writer``) while the
log is read and applied on, one per database in ``writers``; commits are then
smaller at both ends of the log (``ramped``).

``rebuild(store, targets)`` reads the log once and feeds every fresh
projection from it (``FanOut``), committing every ``commit_every`` events
(default: the least any target wants), then swaps them in, all at once (``_finish``). ``ProgressBar``
prints events/s and an ETA to stderr.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol, TextIO

import msgspec

from archive.errors import ChatArchiveError
from archive.events import Recorded
from archive.store import EventStore

from .follower import LogFollower, Projection, ProjectionReset, collection_paused
from .writer import BackgroundWriter

COMMIT_EVERY = 100_000
PAGE_SIZE = 2000  # events a rebuild reads from the log at a time
FIRST_COMMIT = 10_000  # events: the size of a build's first and last commits when a writer process writes them
SWITCH_INTERVAL = 0.0005  # seconds: how soon the applying thread lets the log-reading one have the interpreter lock


class Rebuildable(Protocol):
    name: str

    def begin_rebuild(self) -> Projection:
        """A projection writing into fresh storage, at position 0."""

    def finish_rebuild(self, fresh: Projection) -> None:
        """Atomically replace the live storage with ``fresh``'s."""


class RebuildReport(msgspec.Struct, kw_only=True):
    projections: list[str]
    position: int
    events: int
    seconds: float
    events_per_second: float


class FanOut:
    """Several projections fed from one read of the log, committed together."""

    def __init__(self, projections: Sequence[Projection]):
        self.projections = list(projections)
        self.name = "+".join(p.name for p in self.projections)
        self.events = 0

    def position(self) -> int:
        return min(p.position() for p in self.projections)

    def apply(self, records: Sequence[Recorded]) -> None:
        self.events += len(records)
        for projection in self.projections:
            projection.apply(records)

    def commit(self, position: int) -> None:
        for projection in self.projections:
            try:
                projection.commit(position)
            except ProjectionReset as e:
                # Fresh storage must not be swapped under a build: a reset would
                # silently restart it from another position.
                raise RebuildError(f"rebuild of {projection.name} interrupted: {e}") from e


class RebuildError(ChatArchiveError):
    """A rebuild could not complete; the live views are unchanged."""


class RebuildStopped(RebuildError):
    """The rebuild's ``stop`` was set: the fresh copies were dropped, the live ones are unchanged."""


class ProgressBar:
    """``name [#####.....] 45% 512,000/1,130,000 events 61,000 events/s ETA 0:00:10`` on one line."""

    def __init__(self, label: str, start: int, head: int, stream: TextIO | None = None, every: float = 0.2):
        self.label, self.start, self.head = label, start, max(head, start)
        self.stream = stream or sys.stderr
        self.every = every
        self.began = self._last = time.monotonic()

    def update(self, position: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self.every:
            return
        self._last = now
        done = max(position - self.start, 0)
        total = max(self.head - self.start, done, 1)
        rate = done / max(now - self.began, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0.0
        filled = int(30 * done / total)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {100 * done // total:3d}% "
            f"{done:,}/{total:,} events {rate:,.0f} events/s ETA {_clock(eta)}" + ("\n" if final else "")
        )
        self.stream.flush()


def _progress(bar: ProgressBar | None, stop: threading.Event | None) -> Callable[[int], None] | None:
    if stop is None:
        return bar.update if bar else None

    def progressed(position: int) -> None:
        if stop.is_set():
            raise RebuildStopped("rebuild stopped before it was finished")
        if bar:
            bar.update(position)

    return progressed


def _close(writers: dict[str, BackgroundWriter]) -> None:
    for writer in writers.values():
        writer.close()


def _finish(targets: Sequence[Rebuildable], fresh: Sequence[Projection]) -> None:
    """Every target's ``finish_rebuild`` at once, each in a thread of its own: a view's last work (on PostgreSQL,
    building its tables' indexes: a scan and a sort of each, in the server) overlaps the others' instead of
    following it, and the server's cores share them. Each swap is atomic on its own, as one after another was;
    the first error met is raised once all have ended (``_rebuild`` then aborts those not swapped in)."""
    if len(targets) == 1:
        targets[0].finish_rebuild(fresh[0])
        return
    with ThreadPoolExecutor(len(targets), thread_name_prefix="rebuild finish") as finishing:
        done = [finishing.submit(target.finish_rebuild, projection) for target, projection in zip(targets, fresh)]
    for finished in done:
        finished.result()


def ramped(commit_every: int, start: int, head: int, first: int) -> Callable[[int], int]:
    """The most events to apply before the next commit, given the position of the last one (``LogFollower``'s
    ``max_pending``), for a build from ``start`` to ``head`` written by a writer process: ``first`` at both ends,
    doubling from the start and halving towards the end, ``commit_every`` between. The writer process waits
    while the first commit is applied and this one while the last is written (the fill and drain of a
    two-stage pipeline): with 100,000-event commits each end cost a 1M-event build about a commit's time."""
    first = min(first, commit_every)

    def most(committed: int) -> int:
        return min(commit_every, max(first, min(committed - start, (head - committed) // 2)))

    return most


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def rebuild(
    store: EventStore,
    targets: Sequence[Rebuildable],
    *,
    progress: bool | TextIO = False,
    commit_every: int | None = None,
    page_size: int = PAGE_SIZE,
    background: bool | None = None,
    stop: threading.Event | None = None,
    before_swap: Callable[[], None] | None = None,
) -> RebuildReport:
    """Rebuild ``targets`` from the whole log and swap them in; see the module docstring.
    ``background``: commit through writer processes (default: where the log is longer than one commit);
    ``stop``: once set, ``RebuildStopped`` is raised after the page being applied; ``before_swap``: called
    once the builds are done, before any is swapped in: what it raises aborts them (a purge lease taken over
    while this process paused: another purge may have deleted what they were built from)."""
    # The collector off for the whole build, not only page by page (``collection_paused``): each page
    # leaves thousands of young objects alive (pending lines, id keys), so re-enabling it after every
    # page set off a collection over them, 2-3 s of a 1M search rebuild's main thread (wall 38.5 -> 32.6
    # and 30.7 -> 25.9 s, interleaved at load 8-9). It comes back on once the build's own objects are
    # freed, so its first collection does not walk them either. Only in a main thread (the command
    # line's): a rebuild in a thread of `up` (a purge's, an old index's, one a purge owes) may last hours,
    # and the switch is the process's: the listener's and the API's cycles would pile up meanwhile. So is the
    # interpreter lock's switch interval (``_handing_over_often``).
    build = functools.partial(_rebuild, store, targets, progress=progress, commit_every=commit_every,
                              page_size=page_size, background=background, stop=stop, before_swap=before_swap)
    if threading.current_thread() is not threading.main_thread():
        return build()
    with collection_paused(), _handing_over_often():
        return build()


@contextmanager
def _handing_over_often() -> Iterator[None]:
    """The process's switch interval at most ``SWITCH_INTERVAL`` (Python's is 5 ms): the thread reading the log
    ahead (``readahead``) wants the interpreter lock back after each wait for its database, a few times a page,
    and the applying thread, which holds it, let it go only after the interval, so that the next page was late:
    the applying thread waited 0.9-1.0 s for pages in a 1M-event PostgreSQL rebuild, 0.2-0.4 s with 0.5 ms (load
    1.8-6.5), its CPU no higher."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _rebuild(
    store: EventStore,
    targets: Sequence[Rebuildable],
    *,
    progress: bool | TextIO,
    commit_every: int | None,
    page_size: int,
    background: bool | None,
    stop: threading.Event | None,
    before_swap: Callable[[], None] | None,
) -> RebuildReport:
    if commit_every is None:
        commit_every = min((getattr(t, "rebuild_commit_every", COMMIT_EVERY) for t in targets), default=COMMIT_EVERY)
    began = time.monotonic()
    fresh: list[Projection] = []
    writers: dict[str, BackgroundWriter] = {}
    try:
        for target in targets:
            fresh.append(target.begin_rebuild())  # it may wait for another rebuild of it to end
            began_building = getattr(fresh[-1], "began_building", None)
            if began_building is not None:
                began_building(store.head())  # before the first page is read
        head = store.head()
        if background if background is not None else head > commit_every:
            for projection in fresh:
                write_in_background = getattr(projection, "write_in_background", None)
                if write_in_background is not None:
                    write_in_background(writers)
        fan = FanOut(fresh)
        max_pending = ramped(commit_every, fan.position(), head, FIRST_COMMIT) if writers else commit_every
        bar = None
        if progress:
            stream = progress if progress is not True else None
            bar = ProgressBar(f"rebuild {fan.name}", fan.position(), store.head(), stream)
        follower = LogFollower(
            store,
            fan,
            commit_interval=float("inf"),
            page_size=page_size,
            max_pending=max_pending,
            on_progress=_progress(bar, stop),
        )
        position = follower.catch_up()
        for writer in writers.values():
            writer.wait()  # here, not by each finish in its thread: one reader of each writer's answers
        if before_swap is not None:
            before_swap()
        _finish(targets, fresh)
        if bar:
            bar.update(position, final=True)
    except BaseException:
        _close(writers)  # before a build is dropped: what they were given is written first
        for target, projection in zip(targets, fresh):
            abort = getattr(target, "abort_rebuild", None)
            if abort is not None:
                abort(projection)
        raise
    _close(writers)
    seconds = time.monotonic() - began
    return RebuildReport(
        projections=[t.name for t in targets],
        position=position,
        events=fan.events,
        seconds=round(seconds, 3),
        events_per_second=round(fan.events / seconds if seconds else 0.0, 1),
    )
