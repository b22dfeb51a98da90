"""The PostgreSQL application recorder with the archive's side tables (see ``archive.recorders``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from psycopg.types.string import BytesBinaryDumper

from .audit_tables import PostgresAuditTable
from .batch_rows import BatchRows
from .codec import to_msgpack_list
from .idempotency import Probe, Slot
from .key_upgrade import merge_postgres_index
from .recorders import (
    HeadRow, RangeRow, RoomRow, check_copy_positions, lock_schema_ddl, range_params, bucket_spans,
)

# The side index's columns, kept in the log's own rows: an event and its side data are one row, written by one
# COPY, which the server inserts while the next rows are made. A side table of its own cost a second COPY the
# client had nothing to make beside (the server alone inserting its rows), a second heap row, and the room's
# name twice (``archive.key_upgrade.merge_postgres_index`` moves a store that has one into its log).
SIDE_COLUMNS = (("second", "bigint"), ("digest", "bigint"), ("occurred_at", "double precision"), ("chain", "bytea"))
# Keyed in the room's order, (whole second, version): time-ranged reads walk the key from where
# the last page stopped, nothing is sorted; an idempotency slot's bucket is one range of it.
WALK_INDEX = "archive_event_walk"
# The digests stored in the slots' buckets: the buckets as three column arrays (room, first second,
# second after the last), one range of the key each. A batch's buckets hold few rows beside its own
# (the newest hours of its rooms), fewer than the digests it looks for.
_STORED_SLOTS = (
    "SELECT e.originator_id, e.second, e.digest "
    "FROM unnest(%b::text[], %b::bigint[], %b::bigint[]) AS s(room, lo, hi) "
    "JOIN {} e ON e.originator_id=s.room AND e.second>=s.lo AND e.second<s.hi"
)


class PostgresArchiveRecorder(PostgresAuditTable, PostgresApplicationRecorder):
    """PostgreSQL application recorder that also maintains the archive's side tables."""

    # The store's binary values as they come: COPY takes bytes through the driver's C dumper.
    encode_states = staticmethod(to_msgpack_list)
    blob = bytes

    # The library retries these ten times, silently: a minute of stalled callers while PostgreSQL
    # restarts. One attempt each here; the callers retry with back-off and report the outage
    # (listener writer, projections, indexer: ``archive.health``).
    select_notifications = PostgresApplicationRecorder.select_notifications.__wrapped__
    max_notification_id = PostgresApplicationRecorder.max_notification_id.__wrapped__

    def __init__(self, datastore: Any, **kwargs: Any):
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        self._rooms = SQL("{}.archive_rooms").format(schema)
        self._events = SQL("{}.{}").format(schema, Identifier(self.events_table_name))
        self._copy_events_at = SQL(
            "COPY {} (notification_id, originator_id, originator_version, topic, state, "
            + ", ".join(name for name, _ in SIDE_COLUMNS) + ") FROM STDIN (FORMAT BINARY)"
        ).format(self._events)
        self._draw_positions = SQL(
            "SELECT setval(s, nextval(s) + %s - 1) AS last "
            "FROM (SELECT pg_get_serial_sequence(%s, 'notification_id')::regclass AS s) AS q"
        )
        self._events_name = f'"{self.datastore.schema}"."{self.events_table_name}"'
        self._heads = SQL("{}.archive_chain_heads").format(schema)
        self._audit = SQL("{}.archive_audit").format(schema)
        self._append_audit = SQL("{}.archive_audit_append").format(schema)
        self._stored_slots_sql = SQL(_STORED_SLOTS).format(self._events)
        self._upsert_heads = SQL(
            "INSERT INTO {} SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bytea[], %b::bigint[]) "
            "ON CONFLICT (stream) DO UPDATE SET "
            "version=EXCLUDED.version, link=EXCLUDED.link, genesis_version=EXCLUDED.genesis_version"
        ).format(self._heads)
        self.sql_create_statements += [
            SQL("ALTER TABLE {} " + ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in SIDE_COLUMNS))
            .format(self._events),
            SQL("CREATE TABLE IF NOT EXISTS {} (room text PRIMARY KEY)").format(self._rooms),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (stream text PRIMARY KEY, version bigint NOT NULL, "
                "link bytea NOT NULL, genesis_version bigint NOT NULL)"
            ).format(self._heads),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (seq bigint PRIMARY KEY, at double precision NOT NULL, "
                "state bytea NOT NULL, link bytea NOT NULL)"
            ).format(self._audit),
            SQL("CREATE INDEX IF NOT EXISTS archive_audit_at ON {} (at)").format(self._audit),
            self.audit_function(),
        ]

    def create_table(self) -> None:
        # Processes opening one store at once would race in the library's DDL (CREATE OR
        # REPLACE FUNCTION fails with "tuple concurrently updated"): one at a time, under
        # an advisory lock held by a transaction kept open for the duration.
        with self.datastore.transaction(commit=True) as curs:
            lock_schema_ddl(curs, self.datastore.schema)
            super().create_table()
            merge_postgres_index(curs, self.datastore.schema, self.events_table_name)
            self._collate_rooms_bytewise(curs)
            # Made after a merge has filled the columns: one sort, not an entry maintained per row moved.
            curs.execute(SQL("CREATE INDEX IF NOT EXISTS {} ON {} (originator_id, second, originator_version)")
                         .format(Identifier(WALK_INDEX), self._events))

    def _collate_rooms_bytewise(self, curs: Any) -> None:
        """The log's rooms compared as bytes (collation "C") in its two b-trees over (room, ...): under the
        database's locale (even C.UTF-8) every comparison of two rooms' names went through the locale's
        strcoll, about a sixth of the server's CPU in an append (1M events into a table with the log's three
        indexes: 7.58 -> 6.50 s, three interleaved pairs). UTF-8's byte order is its code points' order, as
        Python sorts names. An earlier log is altered in place: its rows stay, its two indexes are rebuilt once."""
        curs.execute(
            "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid=a.attcollation "
            "WHERE a.attrelid=%s::regclass AND a.attname='originator_id'",
            (self._events_name,),
        )
        if curs.fetchone()["collname"] != "C":
            curs.execute(SQL('ALTER TABLE {} ALTER COLUMN originator_id TYPE text COLLATE "C"').format(self._events))

    def insert_events(self, rows: BatchRows, **kwargs: Any) -> list[int]:
        """Write a batch in one transaction: the events with their side columns through COPY (binary),
        which costs the client a C call per row where column arrays cost a Python dump per element;
        returns the events' positions. The event rows are made while they are sent: the server inserts
        a chunk while the next is made (``archive.batch_rows``). One attempt: the callers retry with
        back-off and report an outage (listener writer, projections, indexer: ``archive.health``)."""
        if not rows.count:
            return []
        with self.datastore.transaction(commit=True) as curs:
            # Writers are ordered by the library's lock of the events table (readers of the log never
            # pass over positions that commit later), taken first, as table set-up takes it, so that a
            # store being opened cannot deadlock. Ordered writers also make the look-up of the batch's
            # slots below see every key committed before it, and none committed until this one ends
            # (``archive.idempotency``).
            self._lock_table(curs)
            probe: Probe | None = kwargs.get("probe")
            if probe and self._stored_slots(curs, probe):
                raise IntegrityError("an event of the batch is stored already (its idempotency slot holds its key)")
            positions: list[int] | None = kwargs.get("positions")
            if positions:
                last = self._copy_at(curs, positions, rows)
            else:
                # The batch's positions drawn from the sequence at once and copied with the rows: under the lock
                # no other writer draws from it, so they are consecutive. A default of nextval() per row cost the
                # server ~0.5 us an event (~8% of its time in the append).
                curs.execute(self._draw_positions, (rows.count, self._events_name), prepare=True)
                last = curs.fetchone()["last"]
                drawn = range(last - rows.count + 1, last + 1)
                _copy(curs, self._copy_events_at, LOG_ROW_TYPES, rows.at(drawn))
            new_rooms = list(kwargs.get("new_rooms", ()))
            if new_rooms:
                curs.executemany(
                    SQL("INSERT INTO {} VALUES (%s) ON CONFLICT DO NOTHING").format(self._rooms),
                    [(room,) for room in new_rooms],
                )
            chain_heads = rows.chain_heads()
            if chain_heads:
                curs.execute(self._upsert_heads, _columns(chain_heads, 4), prepare=True)
            self._notify_channel(curs)
        return positions or list(range(last - rows.count + 1, last + 1))

    def _copy_at(self, curs: Any, positions: list[int], rows: BatchRows) -> int:
        """Copied events at their source positions; the sequence then goes on after the last."""
        curs.execute(self.max_notification_id_statement)
        check_copy_positions(positions, curs.fetchone()["max"] or 0)
        _copy(curs, self._copy_events_at, LOG_ROW_TYPES, rows.at(positions))
        curs.execute("SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                     (self._events_name, positions[-1]))
        return positions[-1]

    def stored_slots(self, probe: Probe) -> set[Slot]:
        """The probed slots that hold a key."""
        with self.datastore.transaction(commit=False) as curs:
            return self._stored_slots(curs, probe)

    def _stored_slots(self, curs: Any, probe: Probe) -> set[Slot]:
        # The planner guesses hundreds of rows in each bucket (its range is a parameter), so a batch's
        # thousand buckets look costly enough for JIT compilation, which takes ten times as long
        # (~50 ms) as the look-up itself.
        curs.execute("SET LOCAL jit = off", prepare=True)
        # Thousands of rows a batch (the rooms' hours so far): as tuples in binary, made by the driver's C
        # loaders, not a dict each from text.
        rows = curs.connection.cursor(row_factory=tuple_row)
        rows.execute(self._stored_slots_sql, _columns(bucket_spans(probe.buckets), 3), prepare=True, binary=True)
        return probe.among(rows.fetchall())

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
        """Every stored link of a stream by version."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT originator_version, chain FROM {} WHERE originator_id=%s").format(self._events), (oid,)
            )
            return {row["originator_version"]: _bytes(row["chain"]) for row in curs.fetchall()}

    def streams(self) -> list[str]:
        """Every stream with events, rooms and the archive's own streams alike."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT DISTINCT originator_id FROM {} ORDER BY originator_id").format(self._events))
            return [row["originator_id"] for row in curs.fetchall()]

    def event_counts(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT originator_id, COUNT(*) AS n FROM {} GROUP BY originator_id").format(self._events))
            return {row["originator_id"]: row["n"] for row in curs.fetchall()}

    def write_chain_heads(self, heads: Sequence[HeadRow]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._upsert_heads, _columns(heads, 4))

    def rooms(self) -> list[str]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT room FROM {} ORDER BY room").format(self._rooms))
            return [row["room"] for row in curs.fetchall()]

    def erase_deleted_copies(self) -> None:
        """Nothing PostgreSQL can do: it has no secure delete. Deleted rows stay in the table's pages until
        (auto)vacuum frees their space and new rows reuse it, and in its WAL until that is recycled (README)."""

    def delete_versions(self, oid: str, versions: Sequence[int], before: float, genesis: bytes) -> None:
        """Delete a stream's events of these versions (all older than ``before``); a
        stream with no chain head gets one at its last version, its chain beginning after it (from ``genesis``)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} SELECT %s, MAX(originator_version), %s, MAX(originator_version) + 1 FROM {} "
                    "WHERE originator_id=%s HAVING COUNT(*) > 0 ON CONFLICT DO NOTHING"
                ).format(self._heads, self._events),
                (oid, genesis, oid),
            )
            curs.execute(
                SQL("DELETE FROM {} WHERE originator_id=%s AND originator_version = ANY(%s)").format(self._events),
                (oid, list(versions)),
            )

    def select_room(self, oid: str, after: RoomRow | None, limit: int) -> list[RoomRow]:
        """A stream's rows in version order after ``after`` (the last row of the page before)."""
        sql = SQL(
            "SELECT notification_id, originator_version, state FROM {} "
            "WHERE originator_id=%s AND originator_version>%s ORDER BY originator_version LIMIT %s"
        ).format(self._events)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(sql, [oid, 0 if after is None else after[1], limit])
            return [
                (row["notification_id"], row["originator_version"], bytes(row["state"]), None)
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
            "SELECT notification_id, originator_version, state, second FROM {} "
            "WHERE originator_id=%s AND (second, originator_version) > (%s, %s) "
            "AND second <= %s AND occurred_at>=%s AND occurred_at<%s "
            "ORDER BY second, originator_version LIMIT %s"
        ).format(self._events)


# A log row: position, room, version, topic, state, then the side columns (``SIDE_COLUMNS``).
LOG_ROW_TYPES = ["int8", "text", "int8", "text", "bytea", "int8", "int8", "float8", "bytea"]


# The binary COPY format's header and trailer, written around the rows formatted here (``_copy``).
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
_COPY_TRAILER = b"\xff\xff"
_SEND_BYTES = 64 * 1024  # sent as it fills: the server inserts these rows while the next are formatted
try:  # the driver's C formatter of one row (psycopg 3.2+; a private name, hence the fallback)
    from psycopg._copy_base import format_row_binary
except ImportError:  # pragma: no cover (older psycopg: its public write_row, half as fast)
    format_row_binary = None


def _copy(curs: Any, statement: SQL, types: list[str], chunks: Iterable[Sequence[tuple]]) -> None:
    # bytea columns take the driver's C dumper of ``bytes``: the one registered for the type by default
    # (``psycopg.Binary``'s, for either argument kind) is Python, half a microsecond a value.
    curs.adapters.register_dumper(bytes, BytesBinaryDumper)
    with curs.copy(statement) as copy:
        copy.set_types(types)
        if format_row_binary is None:
            for row in itertools.chain.from_iterable(chunks):
                copy.write_row(row)
            return
        # The driver's C formatter of a row, called directly: ``write_row`` wraps it in two Python calls
        # and a buffer check per row (~0.35 us an event of the client's ~7.5).
        transformer, buffer = copy.formatter.transformer, bytearray(_COPY_SIGNATURE)
        for rows in chunks:
            for row in rows:
                format_row_binary(row, transformer, buffer)
                if len(buffer) > _SEND_BYTES:
                    copy.write(buffer)
                    buffer = bytearray()
        buffer += _COPY_TRAILER
        copy.write(buffer)


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    """Rows as column lists, for statements over unnest(column arrays)."""
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]


def _head_row(row: dict) -> HeadRow:
    return (row["stream"], row["version"], bytes(row["link"]), row["genesis_version"])


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)
