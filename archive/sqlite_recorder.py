"""The SQLite application recorder with the archive's side tables (see ``archive.recorders``)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnectionPool,
    SQLiteFactory,
)

from .audit_tables import SQLiteAuditTable
from .errors import Fenced
from .copied_trails import SQLITE_TABLES as COPIED_TRAILS, SQLiteCopiedTrails
from .lease_tables import FENCE_SQL, Fence, refusal
from .lease_tables import SQLITE_TABLES as LEASE_TABLES
from .batch_rows import BatchRows
from .codec import to_msgpack_arrays
from .idempotency import Probe, Slot, key_digest
from .key_upgrade import upgrade_sqlite_index, upgrade_sqlite_log
from .recorders import (
    BEFORE_ANY_SECOND, HeadRow, StreamHead, check_copy_positions, checked_highs,
    bucket_spans, running_highs,
)
from .sqlite_files import WAL_CHECKPOINT_BYTES, erase_wal_copies, new_database_pages
from .sqlite_room_reads import SQLiteRoomReads

# The log: eventsourcing's table without its unique (room, version) key, a b-tree written per event that
# the side index orders as well (versions stay unique: ``recorders.checked_highs``); the rowid is the log
# position, declared INTEGER PRIMARY KEY: an undeclared rowid is renumbered by VACUUM (a purge's gaps closed up), and
# every position the side index, the views and the search index hold would name another event. Declared
# under the name ``rowid`` so that every statement reading it, the library's too, reads it as before.
LOG_TABLE = (
    "CREATE TABLE {name} (rowid INTEGER PRIMARY KEY, originator_id TEXT, originator_version INTEGER, topic TEXT, "
    "state BLOB)"
)
# Keyed in the room's order as archived, (the room's highest whole second so far, version): a room's
# next event lands at the right edge of its range, and the key is its version order too (``high`` never
# falls as versions rise). An event in order (``second=high``) sits at its time in that walk; a late one
# (a backfill older than the room's newest) sits also in ``LATE_INDEX`` at its own (second, version), so
# a time-ranged read merges two walks from where the last page stopped, and a slot's bucket is a range
# of each. ``position`` is the event's log rowid.
INDEX_TABLE = (
    "CREATE TABLE {name} (originator_id TEXT NOT NULL, high INTEGER NOT NULL, originator_version INTEGER NOT NULL, "
    "second INTEGER NOT NULL, position INTEGER NOT NULL, digest INTEGER NOT NULL, occurred_at REAL NOT NULL, "
    "chain BLOB, PRIMARY KEY (originator_id, high, originator_version)) WITHOUT ROWID"
)
LATE_INDEX = (
    "CREATE INDEX IF NOT EXISTS archive_event_late ON archive_event_index (originator_id, second, originator_version) "
    "WHERE second<high"
)
# The digests stored in the slots' buckets: one seek per bucket in each walk (the spans, a JSON array of
# [room, first second, second after the last]), then its range. A batch's buckets hold few rows beside
# its own (the newest hours of its rooms), fewer than the digests it looks for.
_STORED_SLOTS = (
    "SELECT i.originator_id, i.second, i.digest FROM json_each(?1) AS s CROSS JOIN archive_event_index AS i "
    "WHERE i.originator_id=json_extract(s.value, '$[0]') AND i.high>=json_extract(s.value, '$[1]') "
    "AND i.high<json_extract(s.value, '$[2]') AND i.second=i.high "
    "UNION ALL SELECT i.originator_id, i.second, i.digest FROM json_each(?1) AS s "
    "CROSS JOIN archive_event_index AS i INDEXED BY archive_event_late "
    "WHERE i.originator_id=json_extract(s.value, '$[0]') AND i.second>=json_extract(s.value, '$[1]') "
    "AND i.second<json_extract(s.value, '$[2]') AND i.second<i.high"
)  # json_extract, not ->> (SQLite 3.38+): the SQLite of older distributions' Pythons reads it too
# Each stream's (a JSON array of them) last row in the side index, its last version and the highest second
# so far (two seeks to the end of its range), and its chain head: one statement for a batch's streams, not
# two a stream (a batch touches about a hundred rooms).
_LAST = ("(SELECT {} FROM archive_event_index WHERE originator_id=s.value "
         "ORDER BY high DESC, originator_version DESC LIMIT 1)")
_HEADS = (
    f"SELECT s.value, {_LAST.format('originator_version')}, {_LAST.format('high')}, h.stream, h.version, h.link, "
    "h.genesis_version FROM json_each(?) AS s LEFT JOIN archive_chain_heads AS h ON h.stream=s.value"
)
_json = msgspec.json.Encoder()


def _stored_slots(c: Any, probe: Probe) -> set[Slot]:
    c.execute(_STORED_SLOTS, (_json.encode(bucket_spans(probe.buckets)).decode(),))
    return probe.among(c.fetchall())


def _stream_heads(c: Any, oids: Iterable[str]) -> dict[str, StreamHead]:
    """Each stream's last stored version (0 if none), highest second so far, and chain head (None before its
    chain began)."""
    c.execute(_HEADS, (_json.encode(list(oids)).decode(),))
    return {oid: (version or 0, BEFORE_ANY_SECOND if high is None else high, tuple(head) if head[0] else None)
            for oid, version, high, *head in c.fetchall()}


# Rows an INSERT statement writes (the rest of a batch one a statement): a batch's statement is stepped,
# reset and rebound once for a hundred rows, not once a row as executemany of a one-row statement does.
# 8 values a side index row: 800 parameters, under the 999 of SQLite before 3.32.
ROWS_PER_INSERT = 100


def _insert_columns(c: Any, into: str, columns: Sequence[Sequence]) -> None:
    """Insert rows given as aligned columns into ``into`` (a table and its columns), ``ROWS_PER_INSERT`` a
    statement. The values are laid out row after row in one list by one slice assignment a column, and each
    statement's values are a slice of it: no tuple an event nor a Python step a value (a tuple an event,
    flattened, cost ~3,000 instructions an event of ~70,000, callgrind). OR FAIL: a statement of many rows that
    may stop at a conflict otherwise copies every page it changes to a statement journal first, to undo its
    own rows alone (the side index's inserts cost 2.4 times as much as row by row); the store rolls its whole
    transaction back on any error anyway."""
    width = len(columns)
    flat: list = [None] * (width * len(columns[0]))
    for i, column in enumerate(columns):
        flat[i::width] = column
    values = f"({','.join('?' * width)})"
    full = width * ROWS_PER_INSERT
    rest = len(flat) - len(flat) % full
    c.executemany(f"INSERT OR FAIL INTO {into} VALUES {','.join([values] * ROWS_PER_INSERT)}",
                  [flat[i : i + full] for i in range(0, rest, full)])
    c.executemany(f"INSERT OR FAIL INTO {into} VALUES {values}",
                  [flat[i : i + width] for i in range(rest, len(flat), width)])


def _current(c: Any, log: str) -> bool:
    """Whether the store is today's (nothing for ``create_table`` to upgrade), read without the write lock."""
    c.execute("PRAGMA table_info(archive_event_index)")
    if "high" not in {row[1] for row in c.fetchall()}:
        return False
    c.execute(f"PRAGMA table_info({log})")
    if not any(row[1] == "rowid" and row[5] == 1 for row in c.fetchall()):
        return False
    c.execute("SELECT 1 FROM sqlite_master WHERE type='index' AND name='archive_event_late'")
    return c.fetchone() is not None


def _index_columns(rows: BatchRows, positions: Sequence[int], highs: dict[str, int]) -> list[Sequence]:
    """The side index's columns: each event's with the room's highest second so far and its log position."""
    rooms, seconds, versions, digests, times, links = rows.index_columns()
    return [rooms, running_highs(rooms, seconds, highs), versions, seconds, positions, digests, times, links]


class SQLiteArchiveRecorder(SQLiteAuditTable, SQLiteCopiedTrails, SQLiteRoomReads, SQLiteApplicationRecorder):
    """SQLite application recorder that also maintains the archive's side tables."""

    # The store's binary values (msgpack states, chain links) as bytearrays: sqlite3 binds a bytearray
    # as it is, and bytes only after a failed look-up for an adapter (about 0.4 us a value, two values
    # an event). ``blob``: an empty one, which links are added to (never changed itself).
    encode_states = staticmethod(to_msgpack_arrays)
    blob = bytearray()

    def construct_create_table_statements(self) -> list[str]:
        return [
            # The library's own statement would make the log with its (room, version) key.
            LOG_TABLE.format(name=f"IF NOT EXISTS {self.events_table_name}"),
            INDEX_TABLE.format(name="IF NOT EXISTS archive_event_index"),
            "DROP INDEX IF EXISTS archive_event_index_time",
            "CREATE TABLE IF NOT EXISTS archive_rooms (room TEXT PRIMARY KEY) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS archive_chain_heads (stream TEXT PRIMARY KEY, "
            "version INTEGER NOT NULL, link BLOB NOT NULL, genesis_version INTEGER NOT NULL) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS archive_audit (seq INTEGER PRIMARY KEY, at REAL NOT NULL, "
            "state BLOB NOT NULL, link BLOB NOT NULL)",
            "CREATE INDEX IF NOT EXISTS archive_audit_at ON archive_audit (at)",
            *COPIED_TRAILS,
            *LEASE_TABLES,
        ]

    def create_table(self) -> None:
        super().create_table()  # CREATE .. IF NOT EXISTS of what exists takes no lock
        with self.datastore.transaction(commit=False) as c:
            # Read first: the write lock taken at every open waited behind the listener's appends (a listener
            # paused mid-append held up every command and worker opening the store).
            if _current(c, self.events_table_name):
                return
        with self.datastore.transaction(commit=True) as c:
            # The write lock before anything is read: processes opening an earlier store together (`up` starts
            # several) would otherwise all read it as earlier, and all but one fail to upgrade from a stale read.
            c.execute("DELETE FROM archive_rooms WHERE 0")
            upgrade_sqlite_index(c, INDEX_TABLE, self.events_table_name)
            upgrade_sqlite_log(c, LOG_TABLE, self.events_table_name)
            c.execute(LATE_INDEX)

    def insert_events(self, rows: BatchRows, **kwargs: Any) -> list[int]:
        # The rows are made before the write transaction begins (``archive.batch_rows``): another
        # writer waits for its lock meanwhile.
        rows.log_columns()
        return super().insert_events(rows, **kwargs)

    def _insert_events(self, c: Any, rows: BatchRows, **kwargs: Any) -> list[int]:
        # One executemany instead of the library's row-by-row inserts; rowids of a
        # single transaction are consecutive (copies come with theirs). Being the
        # first write, it takes SQLite's one write lock: the look-ups below see every
        # version and key committed before, and none can be committed until this transaction ends.
        if not rows.count:
            return []
        positions: list[int] | None = kwargs.get("positions")
        # The library's statement names no columns, and the log has one more (its position, LOG_TABLE).
        columns = "originator_id, originator_version, topic, state"
        if positions:
            c.execute(self.select_max_notification_id_statement)
            check_copy_positions(positions, c.fetchone()[0] or 0)
            _insert_columns(c, f"{self.events_table_name} (rowid, {columns})", [positions, *rows.log_columns()])
        else:
            _insert_columns(c, f"{self.events_table_name} ({columns})", rows.log_columns())
        highs = checked_highs(_stream_heads(c, kwargs["heads"]), kwargs["heads"])
        probe: Probe | None = kwargs.get("probe")
        if probe and _stored_slots(c, probe):
            raise IntegrityError("an event of the batch is stored already (its idempotency slot holds its key)")
        if not positions:
            c.execute(self.select_max_notification_id_statement)
            last = c.fetchone()[0]
            positions = list(range(last - rows.count + 1, last + 1))
        _insert_columns(c, "archive_event_index", _index_columns(rows, positions, highs))
        c.executemany(
            "INSERT OR IGNORE INTO archive_rooms VALUES (?)",
            [(room,) for room in kwargs.get("new_rooms", ())],
        )
        c.executemany("INSERT OR REPLACE INTO archive_chain_heads VALUES (?,?,?,?)", rows.chain_heads())
        if kwargs.get("copied_marks"):
            self._mark_copied(c, kwargs["copied_marks"])
        fence: Fence | None = kwargs.get("fence")
        if fence:  # last before the commit: a holder paused in the append finds the lease expired
            c.execute(FENCE_SQL["sqlite"], (fence.name,))
            row = c.fetchone()
            if why := refusal(fence, tuple(row) if row else None):
                raise Fenced(why)  # the transaction rolls back
        return positions

    def stored_slots(self, probe: Probe) -> set[Slot]:
        """The probed slots that hold a key."""
        with self.datastore.transaction(commit=False) as c:
            return _stored_slots(c, probe)

    def room_heads(self, originator_ids: Iterable[str]) -> dict[str, tuple[int, HeadRow | None]]:
        """Each stream's last version and its chain head (None before its chain began)."""
        with self.datastore.transaction(commit=False) as c:
            return {oid: (version, head) for oid, (version, _, head) in _stream_heads(c, originator_ids).items()}

    def chain_heads(self) -> list[HeadRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT stream, version, link, genesis_version FROM archive_chain_heads ORDER BY stream")
            return [tuple(row) for row in c.fetchall()]

    def stream_links(self, oid: str) -> dict[int, bytes | None]:
        """Every stored link of a stream by version, from the side index."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT originator_version, chain FROM archive_event_index WHERE originator_id=?", (oid,))
            return {row[0]: row[1] for row in c.fetchall()}

    def streams(self) -> list[str]:
        """Every stream with events, rooms and the archive's own streams alike."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT DISTINCT originator_id FROM archive_event_index ORDER BY originator_id")
            return [row[0] for row in c.fetchall()]

    def event_counts(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT originator_id, COUNT(*) FROM {self.events_table_name} GROUP BY originator_id")
            return {row[0]: row[1] for row in c.fetchall()}

    def write_chain_heads(self, heads: Sequence[HeadRow]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany("INSERT OR REPLACE INTO archive_chain_heads VALUES (?,?,?,?)", heads)

    def rooms(self) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT room FROM archive_rooms ORDER BY room")
            return [row[0] for row in c.fetchall()]

    def delete_versions(self, oid: str, versions: Sequence[int], before: float, genesis: bytes) -> None:
        """Delete a stream's events of these versions (all older than ``before``) and their side rows; a
        stream with no chain head gets one at its last version, its chain beginning after it (from ``genesis``)."""
        with self.datastore.transaction(commit=True) as c:
            last, _, _ = _stream_heads(c, [oid])[oid]
            c.execute("INSERT OR IGNORE INTO archive_chain_heads SELECT ?, ?, ?, ? WHERE ?", (oid, last, genesis, last + 1, last))
            # One walk of the stream's side rows finds the versions' keys and log positions (it has no
            # version key of its own).
            c.execute("SELECT high, originator_version, position, occurred_at<? FROM archive_event_index "
                      "WHERE originator_id=? AND originator_version IN (SELECT value FROM json_each(?))",
                      (before, oid, _json.encode(list(versions)).decode()))
            rows = c.fetchall()
            c.executemany(f"DELETE FROM {self.events_table_name} WHERE rowid=?", [(row[2],) for row in rows])
            c.executemany("DELETE FROM archive_event_index WHERE originator_id=? AND high=? AND originator_version=?",
                          [(oid, row[0], row[1]) for row in rows if row[3]])

    def erase_deleted_copies(self) -> None:
        erase_wal_copies(self.datastore)


class _ArchiveSQLitePool(SQLiteConnectionPool):
    def __init__(self, *, synchronous: str, **kwargs: Any):
        self.synchronous = synchronous
        super().__init__(**kwargs)

    def _create_connection(self) -> Any:
        if not self.is_sqlite_memory_mode:
            new_database_pages(self.db_name, self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT)
        connection = super()._create_connection()
        raw: sqlite3.Connection = connection._sqlite_conn
        # WAL with synchronous=NORMAL never corrupts the database; a power loss
        # may undo the last commits, which the listener's MAM backfill restores.
        # FULL costs an fsync per commit (several times slower appends).
        raw.execute(f"PRAGMA synchronous={self.synchronous}")
        raw.execute("PRAGMA cache_size=-65536")  # 64 MB (default 2 MB): a batch's leaves stay cached
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
        raw.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}")
        # A purge deletes for good: the freed space is overwritten (appends never delete, so this costs
        # them nothing).
        raw.execute("PRAGMA secure_delete=ON")
        # For the in-place upgrade of an older side index (``archive.key_upgrade``): a stored key's
        # digest, a time's whole second (the floor, as the store computes it, before 1970 too).
        raw.create_function("archive_key_digest", 1, key_digest, deterministic=True)
        raw.create_function("archive_second", 1, math.floor, deterministic=True)
        return connection


class ArchiveSQLiteFactory(SQLiteFactory):
    """SQLite infrastructure with the archive recorder and a chosen sync level."""

    application_recorder_class = SQLiteArchiveRecorder

    def __init__(self, env: Any):
        super().__init__(env)
        synchronous = (self.env.get("SQLITE_SYNCHRONOUS") or "NORMAL").upper()
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise OSError(f"SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        pool = self.datastore.pool
        self.datastore.pool = _ArchiveSQLitePool(
            synchronous=synchronous, db_name=pool.db_name, lock_timeout=pool.lock_timeout
        )
        pool.close()
