"""eventsourcing application recorders extended with the archive's side index.

The library's ``stored_events`` table is kept exactly as eventsourcing defines
it. Beside it, in the same transaction as every insert, the archive writes:

- ``archive_event_index``: one row per event with its idempotency key (primary
  key, so a duplicate can never be committed) and its ``occurred_at`` as epoch
  seconds, for time-range reads of a room;
- ``archive_rooms``: every room JID (originator id) that has events;
- ``archive_audit``: the audit trail (``archive.audit``), outside the event log so
  that reads never become events the projections must step over; one row per
  record, chained like a stream;
- the hash-chain link of every event (``chain`` column of the side index) and
  ``archive_chain_heads``: each stream's last link and the version its chain
  started at (see ``archive.chain``). A store made before chaining existed gets
  the column on opening; its old rows keep a NULL link.

Both recorders expose the same few extra queries, used by ``EventStore``.
"""

from __future__ import annotations

import math

from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteConnectionPool, SQLiteFactory
from psycopg.sql import SQL, Identifier

from .audit_tables import PostgresAuditTable, SQLiteAuditTable

# (idem_key, originator_id, originator_version, occurred_at epoch seconds, chain link or None)
IndexRow = tuple[str, str, int, float, bytes | None]
# (position, originator_version, state)
RoomRow = tuple[int, int, bytes]
# (position, originator_version, state, whole second of occurred_at)
RangeRow = tuple[int, int, bytes, int]
# (stream, version, link, genesis version): a stream's chain head
HeadRow = tuple[str, int, bytes, int]


class SQLiteArchiveRecorder(SQLiteAuditTable, SQLiteApplicationRecorder):
    """SQLite application recorder that also maintains the archive's side index."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS archive_event_index ("
            "idem_key TEXT PRIMARY KEY, originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, occurred_at REAL NOT NULL) WITHOUT ROWID",
            # Time-ranged reads walk this in the room order (whole second, then version):
            # each page continues where the last one stopped, nothing is sorted.
            "DROP INDEX IF EXISTS archive_event_index_time",
            f"CREATE INDEX IF NOT EXISTS archive_event_index_walk ON archive_event_index "
            f"(originator_id, {_SQLITE_SECOND}, originator_version)",
            "CREATE TABLE IF NOT EXISTS archive_rooms (room TEXT PRIMARY KEY) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS archive_chain_heads (stream TEXT PRIMARY KEY, "
            "version INTEGER NOT NULL, link BLOB NOT NULL, genesis_version INTEGER NOT NULL) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS archive_audit (seq INTEGER PRIMARY KEY, at REAL NOT NULL, "
            "state BLOB NOT NULL, link BLOB NOT NULL)",
            "CREATE INDEX IF NOT EXISTS archive_audit_at ON archive_audit (at)",
        ]

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as c:
            c.execute("PRAGMA table_info(archive_event_index)")
            if "chain" not in {row[1] for row in c.fetchall()}:
                c.execute("ALTER TABLE archive_event_index ADD COLUMN chain BLOB")

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        # One executemany instead of the library's row-by-row inserts; rowids of a
        # single transaction on a table without deletes are consecutive.
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events],
        )
        c.execute(self.select_max_notification_id_statement)
        last = c.fetchone()[0]
        index_rows: list[IndexRow] = kwargs.get("index_rows", [])
        c.executemany(
            "INSERT INTO archive_event_index (idem_key, originator_id, originator_version, occurred_at, chain) "
            "VALUES (?,?,?,?,?)",
            index_rows,
        )
        c.executemany(
            "INSERT OR IGNORE INTO archive_rooms VALUES (?)",
            [(room,) for room in kwargs.get("new_rooms", ())],
        )
        c.executemany("INSERT OR REPLACE INTO archive_chain_heads VALUES (?,?,?,?)", kwargs.get("chain_heads", ()))
        return list(range(last - len(stored_events) + 1, last + 1))

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks(keys, 500):
                c.execute(
                    "SELECT idem_key FROM archive_event_index WHERE idem_key IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update(row[0] for row in c.fetchall())
        return found

    def room_heads(self, originator_ids: Iterable[str]) -> dict[str, tuple[int, HeadRow | None]]:
        """Each stream's last version and its chain head (None before its chain began)."""
        heads = {}
        with self.datastore.transaction(commit=False) as c:
            for oid in originator_ids:
                c.execute(
                    f"SELECT MAX(originator_version) FROM {self.events_table_name} WHERE originator_id=?",
                    (oid,),
                )
                version = c.fetchone()[0] or 0
                c.execute("SELECT stream, version, link, genesis_version FROM archive_chain_heads WHERE stream=?", (oid,))
                row = c.fetchone()
                heads[oid] = (version, tuple(row) if row else None)
        return heads

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
            c.execute(f"SELECT DISTINCT originator_id FROM {self.events_table_name} ORDER BY originator_id")
            return [row[0] for row in c.fetchall()]

    def rooms(self) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT room FROM archive_rooms ORDER BY room")
            return [row[0] for row in c.fetchall()]

    def delete_versions(self, oid: str, versions: Sequence[int], before: float) -> None:
        """Delete a stream's events of these versions (all older than ``before``) and their side rows."""
        with self.datastore.transaction(commit=True) as c:
            for chunk in _chunks(list(versions), 500):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"DELETE FROM {self.events_table_name} WHERE originator_id=? AND originator_version IN ({marks})",
                    (oid, *chunk),
                )
                c.execute(
                    "DELETE FROM archive_event_index WHERE originator_id=? AND occurred_at<? "
                    f"AND originator_version IN ({marks})",
                    (oid, before, *chunk),
                )

    def select_room(self, oid: str, after_version: int, limit: int) -> list[RoomRow]:
        sql = (
            f"SELECT rowid, originator_version, state FROM {self.events_table_name} "
            "WHERE originator_id=? AND originator_version>? ORDER BY originator_version LIMIT ?"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, (oid, after_version, limit))
            return [(row[0], row[1], row[2]) for row in c.fetchall()]

    def select_room_range(
        self, oid: str, after: tuple[int, int] | None, limit: int, t_from: float | None, t_to: float | None
    ) -> list[RangeRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._room_range_sql(), range_params(oid, after, limit, t_from, t_to))
            return [(row[0], row[1], row[2], row[3]) for row in c.fetchall()]

    def explain_room_range(self, *args: Any) -> str:
        """The query plan of a ``select_room_range`` page (tests and the bench show it)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("EXPLAIN QUERY PLAN " + self._room_range_sql(), range_params(*args))
            return "\n".join(row[3] for row in c.fetchall())

    def _room_range_sql(self) -> str:
        return (
            f"SELECT e.rowid, e.originator_version, e.state, {_SQLITE_SECOND} FROM archive_event_index i "
            f"JOIN {self.events_table_name} e ON e.originator_id=i.originator_id "
            "AND e.originator_version=i.originator_version "
            # (second, version) > (?, ?) spelled so that SQLite seeks the index to the second
            # (it does not seek on a row value over an expression)
            f"WHERE i.originator_id=?1 AND {_SQLITE_SECOND} >= ?2 "
            f"AND ({_SQLITE_SECOND} > ?2 OR i.originator_version > ?3) "
            f"AND {_SQLITE_SECOND} <= ?4 AND i.occurred_at>=?5 AND i.occurred_at<?6 "
            f"ORDER BY {_SQLITE_SECOND}, i.originator_version LIMIT ?7"
        )

class PostgresArchiveRecorder(PostgresAuditTable, PostgresApplicationRecorder):
    """PostgreSQL application recorder that also maintains the archive's side index."""

    # The library retries these ten times, silently: a minute of stalled callers while PostgreSQL
    # restarts. One attempt each here; the callers retry with back-off and report the outage
    # (listener writer, projections, indexer: ``archive.health``).
    insert_events = PostgresApplicationRecorder.insert_events.__wrapped__
    select_notifications = PostgresApplicationRecorder.select_notifications.__wrapped__
    max_notification_id = PostgresApplicationRecorder.max_notification_id.__wrapped__

    def __init__(self, datastore: Any, **kwargs: Any):
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        self._index = SQL("{}.archive_event_index").format(schema)
        self._rooms = SQL("{}.archive_rooms").format(schema)
        self._events = SQL("{}.{}").format(schema, Identifier(self.events_table_name))
        self._insert_columns = SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(self._events)
        self._heads = SQL("{}.archive_chain_heads").format(schema)
        self._audit = SQL("{}.archive_audit").format(schema)
        self._insert_index = SQL(
            "INSERT INTO {} (idem_key, originator_id, originator_version, occurred_at, chain) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::float8[], %b::bytea[])"
        ).format(self._index)
        self._upsert_heads = SQL(
            "INSERT INTO {} VALUES (%s, %s, %s, %s) ON CONFLICT (stream) DO UPDATE SET "
            "version=EXCLUDED.version, link=EXCLUDED.link, genesis_version=EXCLUDED.genesis_version"
        ).format(self._heads)
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (idem_key text PRIMARY KEY, "
                "originator_id text NOT NULL, originator_version bigint NOT NULL, "
                "occurred_at double precision NOT NULL)"
            ).format(self._index),
            SQL("DROP INDEX IF EXISTS {}").format(SQL("{}.archive_event_index_time").format(schema)),
            SQL(
                "CREATE INDEX IF NOT EXISTS archive_event_index_walk ON {} "
                "(originator_id, floor(occurred_at), originator_version)"
            ).format(self._index),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (room text PRIMARY KEY)"
            ).format(self._rooms),
            SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS chain bytea").format(self._index),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream text PRIMARY KEY, version bigint NOT NULL, "
                "link bytea NOT NULL, genesis_version bigint NOT NULL)"
            ).format(self._heads),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (seq bigint PRIMARY KEY, at double precision NOT NULL, "
                "state bytea NOT NULL, link bytea NOT NULL)"
            ).format(self._audit),
            SQL("CREATE INDEX IF NOT EXISTS archive_audit_at ON {} (at)").format(self._audit),
        ]

    def create_table(self) -> None:
        # Processes opening one store at once would race in the library's DDL (CREATE OR
        # REPLACE FUNCTION fails with "tuple concurrently updated"): one at a time, under
        # an advisory lock held by a transaction kept open for the duration.
        with self.datastore.transaction(commit=False) as curs:
            lock_schema_ddl(curs, self.datastore.schema)
            super().create_table()

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        # Runs inside the library's insert transaction, before the events themselves.
        # The events table's lock is taken first, so that every writer locks tables in
        # the order table set-up (CREATE INDEX IF NOT EXISTS) does: side tables after
        # the events table, never before it, which would deadlock a store being opened.
        self._lock_table(curs)
        # One statement over column arrays: executemany of 1,000 rows cost ~2.5x more.
        index_rows: list[IndexRow] = kwargs.get("index_rows", [])
        if index_rows:
            curs.execute(self._insert_index, [list(column) for column in zip(*index_rows)], prepare=True)
        new_rooms = list(kwargs.get("new_rooms", ()))
        if new_rooms:
            curs.executemany(
                SQL("INSERT INTO {} VALUES (%s) ON CONFLICT DO NOTHING").format(self._rooms),
                [(room,) for room in new_rooms],
            )
        chain_heads = kwargs.get("chain_heads", ())
        if chain_heads:
            curs.executemany(self._upsert_heads, chain_heads)

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        # The library's notify, then the events as four column arrays rather than
        # one array of a composite type, whose pure-Python text dumping (a regex per bytea
        # state) took about a third of the append time. RETURNING gives the positions in
        # insert order, as the library's own statement relies on.
        self._notify_channel(curs)  # the table is locked already: see _insert_events
        curs.execute(
            self._insert_columns,
            [
                [s.originator_id for s in stored_events],
                [s.originator_version for s in stored_events],
                [s.topic for s in stored_events],
                [s.state for s in stored_events],
            ],
            prepare=True,  # %b: binary arrays; text dumping quotes every element through a regex
        )

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT idem_key FROM {} WHERE idem_key = ANY(%b)").format(self._index), (list(keys),))
            return {row["idem_key"] for row in curs.fetchall()}

    def room_heads(self, originator_ids: Iterable[str]) -> dict[str, tuple[int, HeadRow | None]]:
        """Each stream's last version and its chain head (None before its chain began)."""
        heads = {}
        with self.datastore.transaction(commit=False) as curs:
            for oid in originator_ids:
                curs.execute(
                    SQL("SELECT MAX(originator_version) AS v FROM {} WHERE originator_id=%s").format(self._events),
                    (oid,),
                )
                version = curs.fetchone()["v"] or 0
                curs.execute(SQL("SELECT * FROM {} WHERE stream=%s").format(self._heads), (oid,))
                row = curs.fetchone()
                heads[oid] = (version, _head_row(row) if row else None)
        return heads

    def chain_heads(self) -> list[HeadRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT * FROM {} ORDER BY stream").format(self._heads))
            return [_head_row(row) for row in curs.fetchall()]

    def stream_links(self, oid: str) -> dict[int, bytes | None]:
        """Every stored link of a stream by version, from the side index."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT originator_version, chain FROM {} WHERE originator_id=%s").format(self._index), (oid,)
            )
            return {row["originator_version"]: _bytes(row["chain"]) for row in curs.fetchall()}

    def streams(self) -> list[str]:
        """Every stream with events, rooms and the archive's own streams alike."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT DISTINCT originator_id FROM {} ORDER BY originator_id").format(self._events))
            return [row["originator_id"] for row in curs.fetchall()]

    def rooms(self) -> list[str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT room FROM {} ORDER BY room").format(self._rooms))
            return [row["room"] for row in curs.fetchall()]

    def delete_versions(self, oid: str, versions: Sequence[int], before: float) -> None:
        """Delete a stream's events of these versions (all older than ``before``) and their side rows."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {} WHERE originator_id=%s AND originator_version = ANY(%s)").format(self._events),
                (oid, list(versions)),
            )
            curs.execute(
                SQL(
                    "DELETE FROM {} WHERE originator_id=%s AND occurred_at<%s AND originator_version = ANY(%s)"
                ).format(self._index),
                (oid, before, list(versions)),
            )

    def select_room(self, oid: str, after_version: int, limit: int) -> list[RoomRow]:
        sql = SQL(
            "SELECT notification_id, originator_version, state FROM {} "
            "WHERE originator_id=%s AND originator_version>%s ORDER BY originator_version LIMIT %s"
        ).format(self._events)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(sql, [oid, after_version, limit])
            return [
                (row["notification_id"], row["originator_version"], bytes(row["state"]))
                for row in curs.fetchall()
            ]

    def select_room_range(
        self, oid: str, after: tuple[int, int] | None, limit: int, t_from: float | None, t_to: float | None
    ) -> list[RangeRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._room_range_sql(), range_params(oid, after, limit, t_from, t_to))
            return [
                (row["notification_id"], row["originator_version"], bytes(row["state"]), row["second"])
                for row in curs.fetchall()
            ]

    def explain_room_range(self, *args: Any) -> str:
        """The query plan of a ``select_room_range`` page (tests and the bench show it)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("EXPLAIN ") + self._room_range_sql(), range_params(*args))
            return "\n".join(row["QUERY PLAN"] for row in curs.fetchall())

    def _room_range_sql(self) -> SQL:
        return SQL(
            "SELECT e.notification_id, e.originator_version, e.state, floor(i.occurred_at)::bigint AS second "
            "FROM {} i JOIN {} e "
            "ON e.originator_id=i.originator_id AND e.originator_version=i.originator_version "
            "WHERE i.originator_id=%s AND (floor(i.occurred_at), i.originator_version) > (%s, %s) "
            "AND floor(i.occurred_at) <= %s AND i.occurred_at>=%s AND i.occurred_at<%s "
            "ORDER BY floor(i.occurred_at), i.originator_version LIMIT %s"
        ).format(self._index, self._events)


def _head_row(row: dict) -> HeadRow:
    return (row["stream"], row["version"], bytes(row["link"]), row["genesis_version"])


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)


_SQLITE_SECOND = "CAST(occurred_at AS INTEGER)"  # the whole second, for times after 1970
_FAR = 2**62  # seconds: beyond any time an event carries


def range_params(oid: str, after: tuple[int, int] | None, limit: int, t_from: float | None, t_to: float | None):
    """A ranged page starts after ``after`` (second, version), or before the range's first second."""
    if after is None:
        after = (-_FAR if t_from is None else math.floor(t_from) - 1, 0)
    last = _FAR if t_to is None else math.floor(t_to)
    return [oid, *after, last, _lo(t_from), _hi(t_to), limit]


def _lo(t: float | None) -> float:
    return float("-inf") if t is None else t


def _hi(t: float | None) -> float:
    return float("inf") if t is None else t


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _ArchiveSQLitePool(SQLiteConnectionPool):
    def __init__(self, *, synchronous: str, **kwargs: Any):
        self.synchronous = synchronous
        super().__init__(**kwargs)

    def _create_connection(self) -> Any:
        connection = super()._create_connection()
        # WAL with synchronous=NORMAL never corrupts the database; a power loss
        # may undo the last commits, which the listener's MAM backfill restores.
        # FULL costs an fsync per commit (several times slower appends).
        connection._sqlite_conn.execute(f"PRAGMA synchronous={self.synchronous}")
        # Idempotency keys are room stanza-ids, random strings on Prosody: every append
        # dirties about one random page of their index. A larger page cache (default 2 MB)
        # and checkpoints every ~40 MB of WAL (default 4 MB) instead of after nearly every
        # batch of 1,000 roughly double the append rate once the index outgrows the cache.
        connection._sqlite_conn.execute("PRAGMA cache_size=-65536")
        connection._sqlite_conn.execute("PRAGMA wal_autocheckpoint=10000")
        # A purge deletes for good: the freed space is overwritten (appends never delete, so this costs
        # them nothing).
        connection._sqlite_conn.execute("PRAGMA secure_delete=ON")
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


def lock_schema_ddl(curs: Any, schema: str) -> None:
    """Serialize table set-up in one PostgreSQL schema across processes (store and views alike):
    an advisory lock held until the caller's transaction ends."""
    curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chat-archive ddl {schema}",))
