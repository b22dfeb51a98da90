"""Base of the projections kept in view tables (transcripts, presence).

A ``TableProjection`` is a ``follower.Projection`` and a ``rebuild.Rebuildable``:
it applies records to in-memory pending state (through the subclass's pure
logic), and ``commit`` writes the pending rows and the position in one
transaction of its ``ViewRecorder``. Each instance works on one generation of
its tables (see ``viewdb``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from archive.events import Event, Recorded

from .follower import ProjectionReset
from .columns import Statements
from .viewdb import GenerationChanged
from .viewdb_backends import ViewRecorder
from .writer import BackgroundWriter


class TableProjection:
    """Subclasses set ``name``, ``ddl`` (tables and the indexes ``step`` looks
    things up by) and ``query_ddl`` (indexes only queries need, which a rebuild
    creates at its end, or where its writer process keeps them up, at its start:
    ``write_in_background``), and implement ``_reset``, ``step``, ``_statements``
    and ``_committed``."""

    name: str
    ddl: tuple[str, ...]
    query_ddl: tuple[str, ...] = ()
    # Of ``query_ddl``, the indexes a build makes with its tables, kept up by each insert on every store: partial
    # indexes of a few rows, which cost the writer a test of each row's columns, not a scan of the whole table
    # at the build's end (which the rebuild waits for).
    built_early: tuple[str, ...] = ()
    # The version of the rules a generation's rows are made by, recorded with it (``create_generation``): a live
    # generation of older rules is rebuilt from the log as a runner starts (``outdated``). A subclass raises it for a
    # rule only a rebuild applies (one that needs the log), saying in ``rules_added``
    # what each version added (version -> what, from 2: version 1 is what a view made before versions were
    # recorded counts as, unless its layout says otherwise: ``unrecorded_rules``).
    rules: int = 1
    rules_added: dict[int, str] = {}

    def __init__(self, recorder: ViewRecorder, *, generation: int | None = None, building: bool = False,
                 load: bool = True):
        self.recorder = recorder
        if generation is None:
            generation = self.live_generation(recorder)
        self.generation = generation
        self.building = building
        self._writer: BackgroundWriter | None = None  # a rebuild's writer process (``write_in_background``)
        # Only a rebuild's target is made without loading: it needs nothing of the live generation,
        # which may be of a layout this code can no longer read (the rebuild is how it is replaced).
        if load:
            self._load()

    @classmethod
    def live_generation(cls, recorder: ViewRecorder) -> int:
        """The live generation, made (empty, by these rules) if there is none yet."""
        return recorder.generations(cls.name)[0] or recorder.create_generation(
            cls.name, cls.ddl + cls.query_ddl, live=True, rules=cls.rules
        )

    @classmethod
    def outdated(cls, recorder: ViewRecorder) -> str | None:
        """Why the live view must be rebuilt from the log (built by older ``rules``); None if it need not."""
        generation, built = recorder.live_rules(cls.name)
        if not generation:
            return None
        if built is None:
            built = cls.unrecorded_rules(recorder)
        if built >= cls.rules:
            return None
        added = "; ".join(cls.rules_added[version] for version in range(built + 1, cls.rules + 1))
        return f"the {cls.name} view was built by rules {built}, this program's are {cls.rules}: before {added}"

    @classmethod
    def record_unrecorded_rules(cls, recorder: ViewRecorder) -> None:
        """Record the version of the rules the live generation was built by where none is (``unrecorded_rules``): before
        a runner follows it, which adds rows of this program's rules, and those may change what its tables say (a
        presence view built before room beginnings holds one once a new room comes, and was no longer outdated)."""
        generation, built = recorder.live_rules(cls.name)
        if generation and built is None:
            recorder.record_rules(cls.name, generation, cls.unrecorded_rules(recorder))

    @classmethod
    def unrecorded_rules(cls, recorder: ViewRecorder) -> int:
        """The version of the rules the live generation was built by where none was recorded (made before versions
        were): 1, unless a subclass tells a later one by what its tables hold."""
        return 1

    # -- Projection ----------------------------------------------------------

    def position(self) -> int:
        self._written()
        return self.recorder.position(self.name, self.generation)

    def apply(self, records: Sequence[Recorded]) -> None:
        step = self.step
        for record in records:
            step(record.position, record.event)

    def discard(self) -> None:
        if not self.building:
            # The live generation now: a rebuild may have swapped another in since this one was loaded (the follower
            # resuming from the last commit after a store error, or told of the swap: ``LogFollower.replaced``).
            self.generation = self.recorder.generations(self.name)[0]
        self._load()

    def _load(self) -> None:
        # The position first: a commit by another runner after it only makes the next commit find the view
        # moved on (``commit_batch``'s ``after``), and load again.
        self._since = self.recorder.position(self.name, self.generation)
        self._reset()

    def commit(self, position: int) -> None:
        if self._writer is not None:
            self._writer.submit(self.name, self.generation, position, self._statements())
            self._committed(position)
            return
        try:
            # A build's tables have one writer; the live view's, where a runner that lost its lease wakes
            # beside the one that took over (``viewdb.commit_batch``), may have two.
            self.recorder.commit_batch(self.name, self.generation, position, self._statements(),
                                       building=self.building, after=None if self.building else self._since)
        except GenerationChanged as e:
            if self.building:
                raise
            self.generation = self.recorder.generations(self.name)[0]
            self._load()
            raise ProjectionReset(f"{e}; resuming from generation {self.generation} at {self._since}") from None
        self._since = position
        self._committed(position)

    # -- Rebuildable ---------------------------------------------------------

    def build_ddl(self) -> tuple[str, ...]:
        """The tables a build starts with: ``ddl`` and ``built_early``, unless a subclass leaves a key to
        ``deferred_ddl``."""
        return self.ddl + self.built_early

    def deferred_ddl(self) -> tuple[str, ...]:
        """What ``build_ddl`` left out of ``ddl``: made at a build's end (or earlier, as the subclass needs it)."""
        return ()

    def begin_rebuild(self) -> TableProjection:
        generation = self.recorder.create_generation(self.name, self.build_ddl(), live=False, rules=self.rules)
        return type(self)(self.recorder, generation=generation, building=True)

    def write_in_background(self, writers: dict[str, BackgroundWriter]) -> None:
        """Commit through the writer process of this view database (in ``writers``, started if missing):
        a rebuild's target does, where the log is longer than one commit (``rebuild.rebuild``)."""
        url = self.recorder.url
        if url not in writers:
            writers[url] = BackgroundWriter(url)
        self._writer = writers[url]
        if self.recorder.index_while_building:
            # Made on the empty tables: the writer process keeps them up row by row, while this one applies
            # the log, instead of this one sorting every row for them once the log is read.
            self.recorder.add_indexes(self.name, self.generation, self.query_ddl)

    def _written(self) -> None:
        """Every commit handed to the writer process is durable: before reading this generation."""
        if self._writer is not None:
            self._writer.wait()

    def finish_rebuild(self, fresh: TableProjection) -> None:
        fresh._written()
        # Built from the finished tables, unless the writer process kept them up (``write_in_background``):
        # then they exist, and this makes nothing.
        self.recorder.add_indexes(self.name, fresh.generation, self.deferred_ddl() + self.query_ddl)
        self.recorder.swap_in(self.name, fresh.generation)
        self.generation = fresh.generation
        self._load()

    def abort_rebuild(self, fresh: TableProjection) -> None:
        self.recorder.drop_building(self.name, fresh.generation)

    # -- for subclasses ------------------------------------------------------

    def _reset(self) -> None:
        """Drop pending state and load what the logic needs from the committed view."""
        raise NotImplementedError

    def step(self, position: int, event: Event) -> None:
        raise NotImplementedError

    def _statements(self) -> Statements:
        """The writes that make the pending state durable."""
        raise NotImplementedError

    def _committed(self, position: int) -> None:
        """Pending state is now durable, up to ``position``: forget it."""
        raise NotImplementedError


def micros(moment: datetime) -> int:
    """Epoch microseconds: the integer time the view tables order and filter by."""
    return (moment - EPOCH) // MICROSECOND


def order_micros(moment: datetime) -> int:
    """The ``ts`` lines are ordered by (with their position): see ``archive.times.order_second``
    (the same whole second, without building it). From the difference's days and seconds: cheaper than
    dividing it by a microsecond and subtracting the microseconds (a rebuild runs it for every line)."""
    since = moment - EPOCH
    return since.days * 86_400_000_000 + since.seconds * 1_000_000


def order_micros_each(moments: list[datetime]) -> list[int]:
    """``order_micros`` of each of ``moments`` (a commit's lines), in one comprehension: without a call for each
    (``map``), 14% fewer instructions (callgrind, 87k lines)."""
    return [(since := moment - EPOCH).days * 86_400_000_000 + since.seconds * 1_000_000 for moment in moments]


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
