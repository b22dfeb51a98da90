"""The transcript projection: ``logic`` applied to the log, kept in view tables.

Tables (per generation, see ``projections.viewdb``): ``lines`` (one row per line:
id = position of the creating event, room, ts = occurred_at in epoch
microseconds, the message's stanza/origin/message ids for lookups, and the
``Line`` itself as msgpack) and ``pending`` (retractions waiting for their target).
"""

from __future__ import annotations

import msgspec

from archive import events as ev

from ..tables import TableProjection, micros
from ..viewdb import Statements
from . import logic
from .logic import Line

NAME = "transcripts"

DDL = (
    "CREATE TABLE IF NOT EXISTS {lines} (id INTEGER PRIMARY KEY, room TEXT NOT NULL, ts INTEGER NOT NULL, "
    "stanza_id TEXT, origin_id TEXT, message_id TEXT, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS [lines_time] ON {lines} (room, ts, id)",
    "CREATE INDEX IF NOT EXISTS [lines_s] ON {lines} (room, stanza_id) WHERE stanza_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS [lines_o] ON {lines} (room, origin_id) WHERE origin_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS [lines_m] ON {lines} (room, message_id) WHERE message_id IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS {pending} (room TEXT NOT NULL, ref TEXT NOT NULL, position INTEGER NOT NULL, "
    "data BLOB NOT NULL, PRIMARY KEY (room, ref, position))",
)

REF_COLUMNS = {"s": "stanza_id", "o": "origin_id", "m": "message_id"}

_encode = msgspec.msgpack.Encoder().encode
_decode_line = msgspec.msgpack.Decoder(Line).decode
_decode_retraction = msgspec.msgpack.Decoder(ev.MessageRetracted).decode


def decode_line(data: bytes) -> Line:
    return _decode_line(data)


class TranscriptProjection(TableProjection):
    name = NAME
    ddl = DDL

    def _reset(self) -> None:
        self._lines: dict[int, Line] = {}  # lines created or looked up since the last commit
        self._dirty: set[int] = set()
        self._new: set[int] = set()
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
        for line in outcome.lines:
            if line.id == position and line.id not in self._lines:
                if self._waiting and line.kind == "message":
                    line = self._take_waiting(line)
                self._new.add(line.id)
                for kind, ref in logic.refs(line):
                    self._refs[(line.room, kind, ref)] = line.id
            self._lines[line.id] = line
            self._dirty.add(line.id)
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
        column = REF_COLUMNS[kind]
        rows = self._read_own(
            f"SELECT id, data FROM {{lines}} WHERE room=? AND {column}=? ORDER BY id DESC LIMIT 1", (room, ref)
        )
        if not rows:
            return None
        line_id = rows[0]["id"]
        if line_id not in self._lines:
            self._lines[line_id] = _decode_line(bytes(rows[0]["data"]))
        self._refs[(room, kind, ref)] = line_id
        return self._lines[line_id]

    def _statements(self) -> Statements:
        inserts, updates = [], []
        for line_id in self._dirty:
            line = self._lines[line_id]
            if line_id in self._new:
                inserts.append(
                    (line.id, line.room, micros(line.at), line.stanza_id, line.origin_id, line.message_id,
                     _encode(line))
                )
            else:
                updates.append((_encode(line), line.id))
        return [
            ("INSERT INTO {lines} (id, room, ts, stanza_id, origin_id, message_id, data) VALUES (?,?,?,?,?,?,?)",
             inserts),
            ("UPDATE {lines} SET data=? WHERE id=?", updates),
            ("INSERT INTO {pending} (room, ref, position, data) VALUES (?,?,?,?)", self._waiting_added),
            ("DELETE FROM {pending} WHERE room=? AND ref=?", self._waiting_removed),
        ]

    def _committed(self) -> None:
        self._lines.clear()
        self._dirty.clear()
        self._new.clear()
        self._refs.clear()
        self._waiting_added = []
        self._waiting_removed = []
