"""The presence projection: ``logic`` applied to the log, kept in view tables.

Tables (per generation, see ``projections.viewdb``): ``spans`` (one row per
span: id, stay, room, nick, jid, occupant_id, start_ts and end_ts in epoch
microseconds, ``OPEN`` while open, and the ``Span`` as msgpack) and ``gaps``.
The open spans (the rooms' current occupants) are kept in memory, and which rooms the archive has
watched (``logic.archive_begins``: the gap before each room's first live event, found from every event,
messages too).
"""

from __future__ import annotations

import msgspec

from archive import events as ev

from ..tables import TableProjection, micros
from ..columns import Statements
from . import logic
from .logic import Gap, Span

NAME = "presence"
OPEN = 2**62  # end_ts of an open span: later than any time

DDL = (
    "CREATE TABLE IF NOT EXISTS {spans} (id INTEGER PRIMARY KEY, stay INTEGER NOT NULL, room TEXT NOT NULL, "
    "nick TEXT NOT NULL, jid TEXT, occupant_id TEXT, start_ts INTEGER NOT NULL, end_ts INTEGER NOT NULL, "
    "data BLOB NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS [spans_open] ON {{spans}} (room) WHERE end_ts = {OPEN}",
    "CREATE TABLE IF NOT EXISTS {gaps} (id INTEGER PRIMARY KEY, room TEXT NOT NULL, start_ts INTEGER NOT NULL, "
    "end_ts INTEGER NOT NULL, data BLOB NOT NULL)",
)
QUERY_DDL = (
    "CREATE INDEX IF NOT EXISTS [spans_end] ON {spans} (room, end_ts)",
    "CREATE INDEX IF NOT EXISTS [spans_nick] ON {spans} (room, nick)",
    "CREATE INDEX IF NOT EXISTS [spans_stay] ON {spans} (stay)",
    "CREATE INDEX IF NOT EXISTS [spans_jid] ON {spans} (room, jid) WHERE jid IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS [spans_oid] ON {spans} (room, occupant_id) WHERE occupant_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS [gaps_end] ON {gaps} (room, end_ts)",
)

BEGINNINGS = f"SELECT data FROM {{gaps}} WHERE start_ts = {micros(logic.EARLIEST)}"  # every room's before_archive gap

_encode = msgspec.msgpack.Encoder().encode
decode_span = msgspec.msgpack.Decoder(Span).decode
decode_gap = msgspec.msgpack.Decoder(Gap).decode


def end_ts(span: Span) -> int:
    return OPEN if span.end is None else micros(span.end)


class PresenceProjection(TableProjection):
    name = NAME
    ddl = DDL
    query_ddl = QUERY_DDL

    # 2: every room's archive begins with its first event (``logic.archive_begins``: a before_archive gap until then)
    rules = 2
    rules_added = {2: "the rule of when a room's archive begins (read with it, every room in the view is not reached)"}

    @classmethod
    def unrecorded_rules(cls, recorder) -> int:
        # Every room's first event gives it a before_archive gap (``logic.archive_begins``): a view that has
        # applied events and holds none was built before that rule; one that holds one, or has applied nothing,
        # by it (a view made after it, before versions were recorded, is not rebuilt for want of a version).
        # Read as queries read the live view (``recorder.read``): a rebuild swapping one in (a runner's own, a
        # purge's) drops the tables of the one it replaces, which a look-up of the live one first then read.
        def built_before_the_rule(query, generation: int) -> bool:
            return bool(generation and recorder.position(NAME, generation) and not query(BEGINNINGS + " LIMIT 1"))

        return 1 if recorder.read(NAME, built_before_the_rule) else 2

    def _reset(self) -> None:
        self._dirty: dict[int, Span] = {}
        self._gaps: dict[int, Gap] = {}  # by id: a room's before_archive gap may change (once) before a commit
        self._open: dict[str, dict[str, Span]] = {}
        self._watched: set[str] = set()  # rooms whose before_archive gap has ended
        self._unwatched: dict[str, Gap] = {}  # the others' open gaps
        self._new_from = logic.span_id(self.position() + 1)  # spans with ids from here on are not stored yet
        rows = self.recorder.read_rows(
            self.recorder.sql(f"SELECT data FROM {{spans}} WHERE end_ts = {OPEN}", self.name, self.generation)
        )
        for row in rows:
            span = decode_span(bytes(row["data"]))
            self._open.setdefault(span.room, {})[span.nick] = span
        rows = self.recorder.read_rows(self.recorder.sql(BEGINNINGS, self.name, self.generation))
        for row in rows:
            gap = decode_gap(bytes(row["data"]))
            if gap.end == logic.NEVER:
                self._unwatched[gap.room] = gap
            else:
                self._watched.add(gap.room)

    def apply(self, records) -> None:
        step, watched = self.step, self._watched
        for record in records:
            event = record.event
            if type(event) not in _IGNORED:
                step(record.position, event)
            elif event.room not in watched:  # most events are messages of watched rooms: skip them cheaply
                self._begin(record.position, event)

    def _begin(self, position: int, event: ev.Event) -> None:
        gap = logic.archive_begins(self._unwatched.get(event.room), position, event)
        if gap is None:
            return
        self._gaps[gap.id] = gap
        if gap.end == logic.NEVER:
            self._unwatched[gap.room] = gap
        else:
            self._unwatched.pop(gap.room, None)
            self._watched.add(gap.room)

    def step(self, position: int, event: ev.Event) -> None:
        if event.room not in self._watched:
            self._begin(position, event)
        room_open = self._open.get(event.room)
        if room_open is None:
            room_open = self._open[event.room] = {}
        changes = logic.step(room_open, position, event)
        dirty = self._dirty
        for span in changes:
            dirty[span.id] = span
        logic.hold(room_open, changes)
        if type(event) is _GAP:
            gap = logic.gap_of(position, event)
            self._gaps[gap.id] = gap

    def _statements(self) -> Statements:
        # Spans opened since the last commit are new rows (a plain insert: batched, COPY on PostgreSQL);
        # older ones, closed since, replace their stored open version.
        new, changed, new_from = [], [], self._new_from
        for s in self._dirty.values():
            row = (s.id, s.stay, s.room, s.nick, s.jid, s.occupant_id, micros(s.start), end_ts(s), _encode(s))
            (new if s.id >= new_from else changed).append(row)
        gaps = [(g.id, g.room, micros(g.start), micros(g.end), _encode(g)) for g in self._gaps.values()]
        insert = ("INSERT INTO {spans} (id, stay, room, nick, jid, occupant_id, start_ts, end_ts, data) "
                  "VALUES (?,?,?,?,?,?,?,?,?)")
        return [
            (insert, new),
            (insert + " ON CONFLICT (id) DO UPDATE SET end_ts=excluded.end_ts, data=excluded.data", changed),
            # (A before_archive gap stored open is ended by the room's first live event.)
            ("INSERT INTO {gaps} (id, room, start_ts, end_ts, data) VALUES (?,?,?,?,?) "
             "ON CONFLICT (id) DO UPDATE SET end_ts=excluded.end_ts, data=excluded.data", gaps),
        ]

    def _committed(self, position: int) -> None:
        self._dirty = {}
        self._gaps = {}
        self._new_from = logic.span_id(position + 1)


_GAP = ev.ArchiveGap  # events are no type's subclass (tests/archive: the union is Event's direct subclasses)
_IGNORED = {ev.MessagePosted, ev.MessageCorrected, ev.MessageRetracted, ev.SubjectChanged, ev.RoomDiscovered,
            ev.RoomCreated}
