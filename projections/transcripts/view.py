"""The transcript projection: ``logic`` applied to the log, kept in view tables.

Tables (per generation, see ``projections.viewdb``): ``lines`` (one row per line:
id = position of the creating event, room, ts = the whole second of occurred_at in
epoch microseconds (``tables.order_micros``: with id, the transcript order), ``shown`` = 0 for lines only the compliance view shows,
``awaiting`` = 1 for lines awaiting their message, ``rev`` = position of the
event that last changed the line (the widget's feed follows it), and the ``Line``
itself as msgpack; a correction line taken into its message stays as a row with
``shown`` = GONE, so that a feed can take it away) and ``refs`` (a hash of (room, id) for every id a message line is
known by (``ref_hash``), for the message model's look-ups).
"""

from __future__ import annotations

import zlib

import msgspec

from archive import events as ev
from archive.errors import StoreError

from .. import messages
from ..lines import compliance_only, ids
from ..tables import TableProjection, order_micros
from ..viewdb import Statements
from . import logic
from .logic import Line

NAME = "transcripts"

DDL = (
    "CREATE TABLE IF NOT EXISTS {lines} (id INTEGER PRIMARY KEY, room TEXT NOT NULL, ts INTEGER NOT NULL, "
    "kind TEXT NOT NULL, shown INTEGER NOT NULL, awaiting INTEGER NOT NULL, rev INTEGER NOT NULL, "
    "data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS [lines_awaiting] ON {lines} (id) WHERE awaiting=1",
    "CREATE TABLE IF NOT EXISTS {refs} (ref INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (ref, id))",
)
QUERY_DDL = (
    "CREATE INDEX IF NOT EXISTS [lines_time] ON {lines} (room, ts, id)",
    "CREATE INDEX IF NOT EXISTS [lines_rev] ON {lines} (room, rev)",
    "CREATE INDEX IF NOT EXISTS [lines_subject] ON {lines} (room, ts, id) WHERE kind='subject_changed'",
)
# ``shown``: what a line is to the queries
ORDINARY, COMPLIANCE_ONLY, GONE = 1, 0, -1

MAX_CANDIDATES = 8  # lines sharing a ref hash looked at before giving up (collisions are ~never)


def ref_hash(room: str, ref: str | None) -> int | None:
    """63 bits standing for (room, ref) in the indexes: integers index at a
    fraction of the cost of the random text ids themselves. Matches are
    checked against the line, so a collision cannot mislead."""
    if not ref:
        return None
    seeds = _ROOM_SEEDS.get(room)
    if seeds is None:
        # crc32 continues from a running value: these are the crcs of "<room> <ref>".
        prefix = f"{room} ".encode()
        seeds = _ROOM_SEEDS[room] = (zlib.crc32(prefix), zlib.crc32(prefix, _SALT))
    data = ref.encode()
    return (zlib.crc32(data, seeds[0]) << 31) ^ zlib.crc32(data, seeds[1])


_SALT = 0x5BD1E995
_ROOM_SEEDS: dict[str, tuple[int, int]] = {}


def select_by_ref(query, room: str, ref: str) -> list[Line]:
    """The message lines of ``room`` known by ``ref``, newest first."""
    rows = query(
        "SELECT l.data FROM {refs} r JOIN {lines} l ON l.id=r.id WHERE r.ref=? "
        f"ORDER BY r.id DESC LIMIT {MAX_CANDIDATES}",
        (ref_hash(room, ref),),
    )
    found = [_decode_line(bytes(row["data"])) for row in rows]
    return [line for line in found if line.room == room and ref in ids(line)]


_encode = msgspec.msgpack.Encoder().encode
_decode_line = msgspec.msgpack.Decoder(Line).decode


def decode_line(data: bytes) -> Line:
    return _decode_line(data)


class TranscriptProjection(TableProjection):
    name = NAME
    ddl = DDL
    query_ddl = QUERY_DDL

    def _reset(self) -> None:
        self._book = messages.MemoryBook(lambda room, ref: select_by_ref(self._read_own, room, ref))
        self._new: set[int] = set()  # created since the last commit
        self._changed: dict[int, Line] = {}  # committed before, changed since: the committed version
        self._rev: dict[int, int] = {}  # line id -> the event that last changed it
        self._gone: dict[int, Line] = {}  # lines taken into others, as they were then
        try:
            awaiting = self._read_own("SELECT data FROM {lines} WHERE awaiting=1 ORDER BY id")
        except StoreError as e:
            if "awaiting" not in str(e):
                raise
            raise StoreError(
                "the transcript view was made by an older chat-archive (before the one message model): "
                "rebuild it with chat-archive rebuild transcripts"
            ) from e
        for row in awaiting:
            self._book.remember(_decode_line(bytes(row["data"])))

    def _read_own(self, statement: str, params: tuple = ()) -> list:
        """Rows from this instance's own generation (live or being built)."""
        return self.recorder.read_rows(self.recorder.sql(statement, self.name, self.generation), params)

    def step(self, position: int, event: ev.Event) -> None:
        book = self._book
        changes = logic.step(position, event, book)
        if not changes.put and not changes.dropped:
            return
        new, changed, rev = self._new, self._changed, self._rev
        for line in changes.put:
            line_id = line.id
            rev[line_id] = position
            if line_id == position and line_id not in book.lines:
                new.add(line_id)
            elif line_id not in new and line_id not in changed:
                changed[line_id] = book.lines[line_id]
        for line_id in changes.dropped:
            rev[line_id] = position
            self._gone[line_id] = book.lines[line_id]
            if line_id not in new and line_id not in changed:
                changed[line_id] = book.lines[line_id]
        book.apply(changes)

    def _statements(self) -> Statements:
        lines, dropped, rev, taken = self._book.lines, self._book.dropped, self._rev, self._gone
        created = [lines[i] for i in sorted(self._new) if i not in dropped]
        updated = [lines[i] for i in self._changed if i not in dropped]
        gone = [before for i, before in self._changed.items() if i in dropped]
        # A line taken into another stays a GONE row (for the widget's feed), whether or not it
        # was committed before: an incremental run and a rebuild hold the same rows.
        gone_rows = [(line.id, line.room, order_micros(line.at), line.kind, GONE, 0, rev[line.id], _encode(line))
                     for line in map(taken.__getitem__, sorted(taken))]
        # A correction that stops awaiting its message stops being known by the id it awaited.
        forgotten = [
            (ref_hash(before.room, ref), i)
            for i, before in self._changed.items()
            if i not in dropped and before.awaiting and not lines[i].awaiting
            for ref in set(ids(before)) - set(ids(lines[i]))
        ]
        return [
            ("INSERT INTO {lines} (id, room, ts, kind, shown, awaiting, rev, data) VALUES (?,?,?,?,?,?,?,?)",
             [(line.id, line.room, order_micros(line.at), line.kind, COMPLIANCE_ONLY if compliance_only(line) else ORDINARY,
               1 if line.awaiting else 0, rev[line.id], _encode(line)) for line in created]),
            ("INSERT INTO {refs} (ref, id) VALUES (?,?)", _ref_rows(created)),
            ("UPDATE {lines} SET data=?, awaiting=?, rev=? WHERE id=?",
             [(_encode(line), 1 if line.awaiting else 0, rev[line.id], line.id) for line in updated]),
            ("INSERT INTO {refs} (ref, id) VALUES (?,?) ON CONFLICT DO NOTHING", _ref_rows(updated)),
            ("DELETE FROM {lines} WHERE id=?", [(line.id,) for line in gone]),
            ("INSERT INTO {lines} (id, room, ts, kind, shown, awaiting, rev, data) VALUES (?,?,?,?,?,?,?,?)",
             gone_rows),
            ("DELETE FROM {refs} WHERE ref=? AND id=?", _ref_rows(gone) + forgotten),
        ]

    def _committed(self) -> None:
        self._reset_memory()

    def _reset_memory(self) -> None:
        book = self._book
        kept = [line for line in book.lines.values() if line.awaiting]
        book.lines.clear()
        book.refs.clear()
        book.awaited.clear()
        book.dropped.clear()
        for line in kept:
            book.remember(line)
        self._new.clear()
        self._changed.clear()
        self._rev.clear()
        self._gone.clear()


def _ref_rows(lines: list[Line]) -> list[tuple[int, int]]:
    return [(ref_hash(line.room, ref), line.id) for line in lines if line.kind == "message" for ref in ids(line)]
