"""The transcript projection: ``logic`` applied to the log, kept in view tables.

Tables (per generation, see ``projections.viewdb``): ``lines`` (one row per line:
id = position of the creating event, room, ts = the whole second of occurred_at in
epoch microseconds (``tables.order_micros``: with id, the transcript order),
hashes of the message's stanza/origin/message ids for lookups
(``ref_hash``), and the ``Line`` itself as msgpack) and ``pending`` (retractions waiting for their target).
"""

from __future__ import annotations

import zlib

import msgspec

from archive import events as ev

from ..tables import TableProjection, order_micros
from ..viewdb import Statements
from . import logic
from .logic import Line

NAME = "transcripts"

DDL = (
    "CREATE TABLE IF NOT EXISTS {lines} (id INTEGER PRIMARY KEY, room TEXT NOT NULL, ts INTEGER NOT NULL, "
    "s_ref INTEGER, o_ref INTEGER, m_ref INTEGER, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS [lines_s] ON {lines} (s_ref) WHERE s_ref IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS [lines_o] ON {lines} (o_ref) WHERE o_ref IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS [lines_m] ON {lines} (m_ref) WHERE m_ref IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS {pending} (room TEXT NOT NULL, ref TEXT NOT NULL, position INTEGER NOT NULL, "
    "data BLOB NOT NULL, PRIMARY KEY (room, ref, position))",
)
QUERY_DDL = ("CREATE INDEX IF NOT EXISTS [lines_time] ON {lines} (room, ts, id)",)

REF_COLUMNS = {"s": "s_ref", "o": "o_ref", "m": "m_ref"}
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


def line_has_ref(line: Line, kind: str, ref: str) -> bool:
    return getattr(line, _REF_FIELDS[kind]) == ref


_REF_FIELDS = {"s": "stanza_id", "o": "origin_id", "m": "message_id"}


def select_by_ref(query, room: str, kind: str, ref: str) -> tuple[int, Line] | None:
    """The latest line of ``room`` whose ``kind`` id is ``ref``: (id, line)."""
    rows = query(
        f"SELECT id, data FROM {{lines}} WHERE {REF_COLUMNS[kind]}=? ORDER BY id DESC LIMIT {MAX_CANDIDATES}",
        (ref_hash(room, ref),),
    )
    for row in rows:
        line = _decode_line(bytes(row["data"]))
        if line.room == room and line_has_ref(line, kind, ref):
            return row["id"], line
    return None

_encode = msgspec.msgpack.Encoder().encode
_decode_line = msgspec.msgpack.Decoder(Line).decode
_decode_retraction = msgspec.msgpack.Decoder(ev.MessageRetracted).decode


def decode_line(data: bytes) -> Line:
    return _decode_line(data)


class TranscriptProjection(TableProjection):
    name = NAME
    ddl = DDL
    query_ddl = QUERY_DDL

    def _reset(self) -> None:
        self._lines: dict[int, Line] = {}  # lines created or looked up since the last commit
        self._new: set[int] = set()  # created since the last commit
        self._changed: set[int] = set()  # committed before, changed since
        self._refs: dict[tuple[str, str, str], int] = {}
        self._waiting_added: list[tuple[str, str, int, bytes]] = []
        self._waiting_removed: list[tuple[str, str]] = []
        self._waiting = self._load_waiting()

    def _load_waiting(self) -> dict[tuple[str, str], list[tuple[int, ev.MessageRetracted]]]:
        rows = self._read_own("SELECT room, ref, position, data FROM {pending} ORDER BY position")
        waiting: dict[tuple[str, str], list[tuple[int, ev.MessageRetracted]]] = {}
        for row in rows:
            waiting.setdefault((row["room"], row["ref"]), []).append(
                (row["position"], _decode_retraction(bytes(row["data"])))
            )
        return waiting

    def _read_own(self, statement: str, params: tuple = ()) -> list:
        """Rows from this instance's own generation (live or being built)."""
        return self.recorder.read_rows(self.recorder.sql(statement, self.name, self.generation), params)

    def step(self, position: int, event: ev.Event) -> None:
        outcome = logic.step(position, event, self._find)
        lines, refs = self._lines, self._refs
        for line in outcome.lines:
            line_id = line.id
            if line_id == position and line_id not in lines:
                if self._waiting and line.kind == "message":
                    line = self._take_waiting(line)
                self._new.add(line_id)
                room = line.room
                if line.stanza_id:
                    refs[(room, "s", line.stanza_id)] = line_id
                if line.origin_id:
                    refs[(room, "o", line.origin_id)] = line_id
                if line.message_id:
                    refs[(room, "m", line.message_id)] = line_id
            else:
                self._changed.add(line_id)
            lines[line_id] = line
        if outcome.pending is not None:
            retraction = outcome.pending
            key = (retraction.room, retraction.target_id)
            self._waiting.setdefault(key, []).append((position, retraction))
            self._waiting_added.append((*key, position, _encode(retraction)))

    def _take_waiting(self, line: Line) -> Line:
        keys = [(line.room, ref) for _, ref in logic.refs(line) if (line.room, ref) in self._waiting]
        if keys:
            line = logic.apply_pending(line, self._waiting)
            self._waiting_removed += keys
        return line

    def _find(self, room: str, kind: str, ref: str) -> Line | None:
        line_id = self._refs.get((room, kind, ref))
        if line_id is not None:
            return self._lines[line_id]
        found = select_by_ref(self._read_own, room, kind, ref)
        if found is None:
            return None
        line_id, line = found
        if line_id not in self._lines:
            self._lines[line_id] = line
        self._refs[(room, kind, ref)] = line_id
        return self._lines[line_id]

    def _statements(self) -> Statements:
        lines = self._lines
        inserts = [
            (line.id, line.room, order_micros(line.at), ref_hash(line.room, line.stanza_id),
             ref_hash(line.room, line.origin_id), ref_hash(line.room, line.message_id), _encode(line))
            for line in map(lines.__getitem__, sorted(self._new))
        ]
        updates = [(_encode(lines[line_id]), line_id) for line_id in self._changed - self._new]
        return [
            ("INSERT INTO {lines} (id, room, ts, s_ref, o_ref, m_ref, data) VALUES (?,?,?,?,?,?,?)",
             inserts),
            ("UPDATE {lines} SET data=? WHERE id=?", updates),
            ("INSERT INTO {pending} (room, ref, position, data) VALUES (?,?,?,?)", self._waiting_added),
            ("DELETE FROM {pending} WHERE room=? AND ref=?", self._waiting_removed),
        ]

    def _committed(self) -> None:
        self._lines.clear()
        self._new.clear()
        self._changed.clear()
        self._refs.clear()
        self._waiting_added = []
        self._waiting_removed = []
