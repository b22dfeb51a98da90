"""The transcript projection: ``logic`` applied to the log, kept in view tables.

Tables (per generation, see ``projections.viewdb``): ``lines`` (one row per line:
id = position of the creating event, room = the room's number in ``rooms``, ts = the whole second of
occurred_at in epoch microseconds (``tables.order_micros``: with id, the transcript order), ``shown`` = 0
for lines only the compliance view shows, ``awaiting`` = 1 for lines awaiting their message, ``rev`` =
position of the event that last changed the line (the widget's feed follows it), ``late`` = 1 for a line
of an earlier ``ts`` than a line of its room created before it (``RoomTops``), and ``fields``, the
``Line`` itself (``lines.stored``; a view whose lines are msgpack maps has ``data`` instead, and is
refused saying what rebuilds it: ``OLDER_LAYOUT``); a correction line taken into its message stays as a row
with ``shown`` = GONE, so that a feed can take it away), ``rooms`` (each room's JID and number, numbered
as their first lines come: a number in each row and query index entry instead of the JID's text, which
SQLite compares and stores at a cost) and ``refs`` (every id a message line is known by: ``refs``).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from operator import attrgetter, le

from archive import events as ev
from archive.errors import StoreError

from .. import memory_book
from ..lines import COMPLIANCE_ONLY_KINDS, from_stored, ids, stored
from ..owned import OwnedIds
from ..tables import TableProjection, order_micros, order_micros_each
from ..columns import Columns, Statements
from . import logic
from .logic import Line
from .refs import (INSERT_REFS, REFS, REFS_KEY, REFS_UNKEYED, all_ref_rows, created_ref_rows, ref_ids, ref_rows,
                   select_by_ref)

NAME = "transcripts"

DDL = (
    "CREATE TABLE IF NOT EXISTS {lines} (id INTEGER PRIMARY KEY, room INTEGER NOT NULL, ts INTEGER NOT NULL, "
    "kind TEXT NOT NULL, shown INTEGER NOT NULL, awaiting INTEGER NOT NULL, rev INTEGER NOT NULL, "
    "late INTEGER NOT NULL, fields BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS [lines_awaiting] ON {lines} (id) WHERE awaiting=1",
    REFS,
    "CREATE TABLE IF NOT EXISTS {rooms} (id INTEGER PRIMARY KEY, jid TEXT NOT NULL UNIQUE)",
)
# A few hundred rows of a million: kept up row by row from a build's start, it costs a test of each row's kind;
# built at the end, a scan of the whole table (1M events on PostgreSQL: 0.15 s of the server's, in the build's
# last phase, which the rebuild waits for).
LINES_SUBJECT = "CREATE INDEX IF NOT EXISTS [lines_subject] ON {lines} (room, ts, id) WHERE kind='subject_changed'"
# The widget's feed (``queries.Transcripts.changes``) reads the lines created since its cursor by ``lines_time``
# (a line neither changed since nor late comes in the order of its room's times) and the others by
# ``lines_changed``: a few of a million, where an index of every line by (room, rev) cost a rebuild's writer
# process 1.3 s of 1M events' lines on SQLite. Its WHERE is ``CHANGED_OR_LATE``'s text: SQLite uses a partial
# index only for a statement that says the same. Made with a build's tables (``built_early``), as ``LINES_SUBJECT``:
# built at the end it was a scan of the whole table (1M events on PostgreSQL: 0.21 s of the server's CPU, in the
# build's last phase), kept up it costs the writer's backend no more than the noise (interleaved rebuilds, load 4-5.6).
CHANGED_OR_LATE = "(rev<>id OR late=1)"
LINES_CHANGED = f"CREATE INDEX IF NOT EXISTS [lines_changed] ON {{lines}} (room, rev, id) WHERE {CHANGED_OR_LATE}"
QUERY_DDL = (
    "CREATE INDEX IF NOT EXISTS [lines_time] ON {lines} (room, ts, id)",
    LINES_CHANGED,
    LINES_SUBJECT,
)
# ``shown``: what a line is to the queries
ORDINARY, COMPLIANCE_ONLY, GONE = 1, 0, -1

# What a load or a query of a view of an older layout says. An older chat-archive recorded no version of the rules it
# built by, so such a view counts as rules 1: the projections' next start rebuilds it from the log without loading it
# (``TableProjection.outdated``), and an API host may serve it until then.
OLDER_LAYOUT = (
    "the transcript view was built by an older chat-archive (another table layout): "
    "chat-archive up or project rebuild it from the log as they start (or chat-archive rebuild transcripts)"
)


def made_by_older_layout(error: StoreError) -> bool:
    """Whether ``error``, from a read of the view, is for want of what this layout added (the ``fields``
    column of positional lines, the refs' ``ref_key``, ``awaiting``, the ``rooms`` table, ``late``): a view an older
    chat-archive made, which this one would misread. Only a missing table or column: PostgreSQL's other errors
    quote the statement, which names them too."""
    text = str(error)
    missing = "no such " in text or "does not exist" in text
    return missing and any(name in text for name in ("awaiting", "ref_key", "fields", "_rooms_", "late"))


class TranscriptProjection(TableProjection):
    name = NAME
    ddl = DDL
    query_ddl = QUERY_DDL
    built_early = (LINES_SUBJECT, LINES_CHANGED)
    # 2: a removal's and a version's ``capture``, the current text's ``edit_capture``, a gap's ``gap_recovered`` and
    # ``gap_verified`` (``lines``): lines made before read as live and not verified, which only the log can correct
    rules = 2
    rules_added = {2: "removals and versions said how they were captured (an imported one read as live), "
                      "and gaps whether the room's archive was read over them and what it recovered"}

    def build_ddl(self) -> tuple[str, ...]:
        ddl = super().build_ddl()
        if not self.recorder.keys_after_building:
            return ddl
        return tuple(REFS_UNKEYED if statement == REFS else statement for statement in ddl)

    def deferred_ddl(self) -> tuple[str, ...]:
        return (REFS_KEY,) if self.recorder.keys_after_building else ()

    def _key_refs(self) -> None:
        """The refs of a build keyed now, if they are not (``REFS_KEY``): before they are looked up or deleted from."""
        if not self._refs_keyed:
            self._written()
            self.recorder.add_indexes(self.name, self.generation, self.deferred_ddl())
            self._refs_keyed = True

    def _reset(self) -> None:
        self._refs_keyed = not (self.building and self.deferred_ddl())
        self._book = memory_book.MemoryBook(self._committed_lines)
        self._recent: tuple[dict, dict, dict, int] | None = None  # the last commit's lines (``_committed_lines``)
        self._changed: dict[int, Line] = {}  # committed before, changed since: the committed version
        self._rev: dict[int, int] = {}  # line id -> the event that last changed it
        self._gone: dict[int, Line] = {}  # lines taken into others, as they were then
        for row in self._awaiting_lines():
            self._book.remember(from_stored(bytes(row["fields"])))
        self._rooms = RoomNumbers({row["jid"]: row["id"] for row in self._read_own("SELECT id, jid FROM {rooms}")})
        self._tops = RoomTops(set(self._rooms.known.values()), self._latest)
        self._book.horizon = self.position()
        # The stanza-ids of the lines committed before the last commit, if this process built all of them.
        self._owned = OwnedIds(complete=self._book.horizon == 0)

    def _awaiting_lines(self) -> list:
        """The rows of the lines awaiting their message, from a view of this layout; an older one is refused."""
        try:
            return self._read_layout()
        except StoreError as e:
            if made_by_older_layout(e):
                raise StoreError(OLDER_LAYOUT) from e
            raise

    def _read_layout(self) -> list:
        self._read_own("SELECT ref_key FROM {refs} LIMIT 0")
        self._read_own("SELECT late FROM {lines} LIMIT 0")
        return self._read_own("SELECT fields FROM {lines} WHERE awaiting=1 ORDER BY id")

    def _committed_lines(self, room: str, ref: str, owned: bool) -> list[Line]:
        """The committed message lines of ``room`` known by ``ref``, those owning it first, each kind newest
        first, only those if ``owned`` (``MemoryBook``): from the last commit's lines, where they tell (the lines
        it created are newer than all before, and the lines corrections name nearly always are among them),
        and ``_owned`` says no older line owns ``ref``; else the view's (``select_by_ref``). A rebuild's writer
        process may still be writing the last commit: only the view's wait for it."""
        if self._recent is not None:
            refs, owners, lines, horizon = self._recent
            dropped = self._book.dropped
            line = lines.get(owners.get(room, memory_book.NO_REFS).get(ref))
            # Past the last commit's horizon: created by it. A line dropped since (rare) has older
            # candidates behind it, which the view has.
            if line is not None and line.id > horizon and line.id not in dropped:
                return [line]
            if line is None and self._owned.none_own(room, ref):
                if owned:
                    return []
                line = lines.get(refs.get(room, memory_book.NO_REFS).get(ref))
                if line is not None and line.id > horizon and ref in ids(line) and line.id not in dropped:
                    return [line]
        elif self._owned.complete:
            return []  # nothing committed since the view was empty
        self._key_refs()
        return select_by_ref(self._read_own, room, ref, owned)

    def _latest(self, room: int) -> int:
        """The latest ``ts`` of the committed lines of ``room`` (a room's number)."""
        rows = self._read_own("SELECT MAX(ts) AS ts FROM {lines} WHERE room=?", (room,))
        return NO_TIME if rows[0]["ts"] is None else rows[0]["ts"]

    def _read_own(self, statement: str, params: tuple = ()) -> list:
        """Rows from this instance's own generation (live or being built)."""
        self._written()
        return self.recorder.read_rows(self.recorder.sql(statement, self.name, self.generation), params)

    def apply(self, records) -> None:
        """Posts that nothing awaits by the book's shortcut (``MemoryBook.post_each``), anything else by ``step``."""
        self._book.post_each(records, self.step)

    def step(self, position: int, event: ev.Event) -> None:
        book = self._book
        changes = logic.step(position, event, book)
        put = changes.put
        if len(put) == 1 and put[0].id == position and not changes.dropped:
            # What the post shortcut leaves to ``step`` is mostly this: a new line nothing else changes.
            book.remember(put[0])
            return
        if not put and not changes.dropped:
            return
        # Lines after the horizon were created since the last commit; rev is the line's own id
        # unless a later event changed it.
        changed, rev, horizon = self._changed, self._rev, book.horizon
        for line in changes.put:
            line_id = line.id
            if line_id != position:
                rev[line_id] = position
            if line_id <= horizon and line_id not in changed:
                changed[line_id] = book.lines[line_id]
        for line_id in changes.dropped:
            rev[line_id] = position
            self._gone[line_id] = book.lines[line_id]
            if line_id <= horizon and line_id not in changed:
                changed[line_id] = book.lines[line_id]
        book.apply(changes)

    def _statements(self) -> Statements:
        lines, dropped, rev, taken, horizon = self._book.lines, self._book.dropped, self._rev, self._gone, self._book.horizon
        created = [line for i, line in lines.items() if i > horizon]  # in log order: as they were created
        updated = [lines[i] for i in self._changed if i not in dropped]
        gone = [before for i, before in self._changed.items() if i in dropped]
        # A line taken into another stays a GONE row (for the widget's feed), whether or not it
        # was committed before: an incremental run and a rebuild hold the same rows.
        gone_lines = [taken[i] for i in sorted(taken)]
        if gone_lines and {line.room for line in gone_lines} - self._rooms.known.keys():
            # Rooms are numbered in the order of their first lines, as a rebuild meets them whichever
            # commits an incremental run made: a line taken into another this commit may be a room's first.
            self._rooms.of(list(heapq.merge(created, gone_lines, key=_line_id)))
        # Taken since the last commit: a new GONE row, late or not as it would be had it been committed before
        # (``created_statements``); committed before: its row, late as it was made, becomes a GONE row.
        new_gone = [line for line in gone_lines if line.id > horizon]
        gone_rows = [(line.id, room, order_micros(line.at), line.kind, GONE, 0, rev[line.id], fields)
                     for line, room, fields in zip(new_gone, self._rooms.of(new_gone), stored(new_gone))]
        old_gone = [line for line in gone_lines if line.id <= horizon]
        # The ids a committed line gained (corrections applied) or lost (a correction that
        # stops awaiting its message stops being known by the id it awaited).
        gained, lost = [], []
        for line in updated:
            now, before = ref_ids(line), ref_ids(self._changed[line.id])
            gained += ref_rows(line, [ref for ref in now if ref not in before])
            lost += ref_rows(line, [ref for ref in before if ref not in now])
        gone_refs = all_ref_rows(gone)
        if lost or gone_refs:
            self._key_refs()
        return [
            *created_statements(created, rev, self._rooms, self._tops, gone_rows, json_each=self.recorder.json_each),
            (INSERT_REFS, gained),
            ("UPDATE {lines} SET fields=?, awaiting=?, rev=? WHERE id=?",
             [(fields, 1 if line.awaiting else 0, rev[line.id], line.id)
              for line, fields in zip(updated, stored(updated))]),
            (f"UPDATE {{lines}} SET shown={GONE}, awaiting=0, rev=?, fields=? WHERE id=?",
             [(rev[line.id], fields, line.id) for line, fields in zip(old_gone, stored(old_gone))]),
            ("DELETE FROM {refs} WHERE ref_key=? AND id=?", gone_refs),
            ("DELETE FROM {refs} WHERE ref_key=? AND id=?", lost),
            ("INSERT INTO {rooms} (id, jid) VALUES (?,?)", self._rooms.numbered()),
        ]

    def _committed(self, position: int) -> None:
        self._reset_memory()
        self._book.horizon = position

    def _reset_memory(self) -> None:
        book = self._book
        # The lines awaiting a message, from the book's own record of them (rare): not a look at each of the
        # commit's lines (every line of a rebuild).
        kept = [book.lines[line_id] for waiting in book.awaited.values() for line_id in sorted(waiting)]
        if self._recent is not None:
            self._owned.forgot(self._recent[1])
        self._recent = (book.refs, book.owners, book.lines, book.horizon)
        book.lines, book.refs, book.owners, book.awaited, book.dropped = {}, memory_book.room_ids(), memory_book.room_ids(), {}, set()
        for line in kept:
            book.remember(line)
        self._changed.clear()
        self._rev.clear()
        self._gone.clear()


_line_id = attrgetter("id")

class RoomNumbers:
    """The number of each room in ``rooms`` (``known``), and those numbered since they were last written."""

    def __init__(self, known: dict[str, int]):
        self.known = known
        self._new: list[tuple[int, str]] = []

    def of(self, lines: list[Line]) -> list[int]:
        """The number of each line's room, numbering the rooms met for the first time."""
        rooms = [line.room for line in lines]
        numbers = list(map(self.known.get, rooms))
        if None in numbers:  # rare: a room's first lines
            numbers = [self.known.get(room) or self._number(room) for room in rooms]
        return numbers

    def _number(self, room: str) -> int:
        number = self.known[room] = len(self.known) + 1
        self._new.append((number, room))
        return number

    def numbered(self) -> list[tuple[int, str]]:
        """The ``rooms`` rows of the rooms numbered since the last call."""
        new, self._new = self._new, []
        return new


def created_statements(created: list[Line], rev: dict[int, int], rooms: RoomNumbers, tops: RoomTops,
                       gone_rows: list[tuple], *, json_each: bool) -> Statements:
    """The ``lines`` and ``refs`` rows of the lines created since the last commit (this is every line
    of a rebuild), given the events that changed some of them since (``rev``), the rooms' numbers
    (``rooms``: a room met for the first time is numbered; its row is ``rooms.numbered()``'s) and latest times
    (``tops``), and the GONE rows of lines created and taken into others since (``gone_rows``, by id, without
    their ``late``: each is inserted with it, in the order of ids with the others); the refs from
    a JSON array where the recorder reads one (``json_each``: ``refs.created_ref_rows``). Built here,
    not in a rebuild's writer process: with the query indexes kept up there (``TableProjection.write_in_background``)
    that is the busier process, and it had to decode the lines again to build them (1M events, interleaved
    at load 2.8-3.3: wall 0.84x)."""
    ids_ = [line.id for line in created]
    numbers, times = rooms.of(created), order_micros_each([line.at for line in created])
    # Late or not in the order of ids: the GONE rows among the created lines where their ids fall.
    late, gone_late, start = [], [], 0
    for row in gone_rows:
        end = bisect_left(ids_, row[0], start)
        late += tops.late(numbers[start:end], times[start:end])
        gone_late += tops.late([row[1]], [row[2]])
        start = end
    late += tops.late(numbers[start:], times[start:]) if start else tops.late(numbers, times)
    return [
        (INSERT_LINES, _created_rows(created, ids_, numbers, times, late, stored(created), rev)),
        (INSERT_LINES, [(*row[:7], flag, row[7]) for row, flag in zip(gone_rows, gone_late)]),
        *created_ref_rows(created, json_each),
    ]


INSERT_LINES = "INSERT INTO {lines} (id, room, ts, kind, shown, awaiting, rev, late, fields) VALUES (?,?,?,?,?,?,?,?,?)"


def _created_rows(created: list[Line], ids_: list[int], rooms: list[int], times: list[int], late: list[int],
                  fields: list[bytes], rev: dict[int, int]) -> Columns:
    """Column by column (``columns.Columns``): a comprehension or ``map`` per column, not a loop
    appending to eight lists (1.9 -> 1.6 us a line)."""
    kinds = [line.kind for line in created]
    return Columns(
        ids_,
        rooms,
        times,
        kinds,
        # From the kinds, not ``compliance_only`` called for each line (every line of a rebuild).
        [COMPLIANCE_ONLY if kind in COMPLIANCE_ONLY_KINDS else ORDINARY for kind in kinds],
        [1 if line.awaiting else 0 for line in created],
        list(map(rev.get, ids_, ids_)) if rev else ids_,
        late,
        fields,
    )


NO_TIME = -(2**63)  # earlier than any line's ts


class RoomTops:
    """The latest ``ts`` of each room's lines so far, which makes a line ``late`` (the one rule of it): of an
    earlier ``ts`` than a line of its room created before it. So the lines not late come in the order of ids
    and of times alike, what the widget's feed reads them by. A function of the lines and their order only:
    a rebuild and an incremental run, whichever commits they make, mark the same lines."""

    def __init__(self, committed: set[int], latest):
        self._top: dict[int, int] = {}
        self._committed = committed  # the rooms that had committed lines when this began,
        self._latest = latest  # and where their latest ts is read (the others have none)

    def late(self, rooms: list[int], times: list[int]) -> list[int]:
        """1 for each line (its room's number and ts, in the order of ids) that is late, else 0; the room's
        latest ts moves on with each that is not."""
        top = self._top
        met = set(rooms)
        for room in met.difference(top):  # each room once in a run: not the loop's look-up
            top[room] = self._latest(room) if room in self._committed else NO_TIME
        if times and max(map(top.__getitem__, met)) <= times[0] and all(map(le, times, times[1:])):
            # Nearly always (a rebuild's every commit): times in order from no earlier than any room's latest,
            # so none is late and each room's latest is its last. Tested in C, not line by line in the loop
            # below (callgrind, 200k-event rebuild of both views: the applying thread 0.8% fewer instructions).
            top.update(zip(rooms, times))
            return [0] * len(times)
        flags = []
        append = flags.append
        for room, ts in zip(rooms, times):
            if ts < top[room]:
                append(1)
            else:
                top[room] = ts
                append(0)
        return flags

