"""The PostgreSQL application recorder with the archive's side tables (see ``archive.recorders``): its schema and
writes, the look-ups a write makes and the stores' shared queries. Its room page reads: ``archive.postgres_room_reads``;
its binary COPY: ``archive.postgres_copy``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import contextlib

from eventsourcing.persistence import IntegrityError

from .errors import Fenced
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.errors import DuplicateObject
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from .audit_tables import PostgresAuditTable
from .copied_trails import PostgresCopiedTrails, postgres_tables as copied_trails_tables
from .batch_rows import BatchRows
from .codec import to_msgpack_list
from .idempotency import Probe, Slot
from .key_upgrade import drop_postgres_version_key, merge_postgres_index
from .lease_tables import Fence, postgres_fence, refusal
from .lease_tables import postgres_tables as lease_tables
from .postgres_copy import copy_rows
from .postgres_room_reads import PostgresRoomReads
from .recorders import BEFORE_ANY_SECOND, HeadRow, StreamHead, check_copy_positions, checked_highs, bucket_spans
from .schema_ddl import digest, missing_columns, needed, set_up

# The side index's columns, kept in the log's own rows: an event and its side data are one row, written by one
# COPY, which the server inserts while the next rows are made. A side table of its own cost a second COPY the
# client had nothing to make beside (the server alone inserting its rows), a second heap row, and the room's
# name twice (``archive.key_upgrade.merge_postgres_index`` moves a store that has one into its log).
# ``high`` is the room's highest whole second so far (``recorders.running_highs``).
SIDE_COLUMNS = (("second", "bigint"), ("digest", "bigint"), ("occurred_at", "double precision"), ("chain", "bytea"),
                ("high", "bigint"))
# A log row: position, room, version, topic, state, then the side columns (``SIDE_COLUMNS``).
LOG_ROW_TYPES = ["int8", "text", "int8", "text", "bytea", "int8", "int8", "float8", "bytea", "int8"]
# The log has no unique (room, version) key (the library's: a b-tree written per event, a third of the server's
# CPU in an append; versions stay unique: ``recorders.checked_highs``). It is keyed in the room's order as
# archived, (room, the room's highest second so far, version): a room's next event lands at the right edge of
# its range, and the key is its version order too (``high`` never falls as versions rise). An event in order
# (``second=high``) sits at its time in that walk; a late one (a backfill older than the room's newest) sits
# also in ``LATE_INDEX`` at its own (second, version), so a time-ranged read merges two walks from where the
# last page stopped, and a slot's bucket is a range of each (as on SQLite: ``archive.sqlite_recorder``).
ORDER_INDEX = "archive_event_order"
# The upgrades ``_set_up`` runs beside the statements (part of the set-up's digest): a changed upgrade, a new name.
_MIGRATIONS = "merge_postgres_index drop_postgres_version_key collate-C"
LATE_INDEX = "archive_event_late"
# The digests stored in the slots' buckets: the buckets as three column arrays (room, first second,
# second after the last), one range of each walk per bucket. A batch's buckets hold few rows beside its own
# (the newest hours of its rooms), fewer than the digests it looks for. The first walk reads the late events
# whose ``high`` falls in a bucket too: each row is read at its own second (``Probe.among``), and a filter
# ``second=high`` would make the planner guess too few rows (two columns compared) and scan the whole log.
_STORED_SLOTS = (
    "SELECT e.originator_id, e.second, e.digest "
    "FROM unnest(%b::text[], %b::bigint[], %b::bigint[]) AS s(room, lo, hi) "
    "JOIN {log} e ON e.originator_id=s.room AND e.high>=s.lo AND e.high<s.hi "
    "UNION ALL SELECT e.originator_id, e.second, e.digest "
    "FROM unnest(%b::text[], %b::bigint[], %b::bigint[]) AS s(room, lo, hi) "
    "JOIN {log} e ON e.originator_id=s.room AND e.second>=s.lo AND e.second<s.hi AND e.second<e.high"
)
# Each stream's last row by version (the right edge of its walk) and its chain head, in one round trip.
_STREAM_HEADS = (
    "SELECT s.stream, e.originator_version, e.high, h.version, h.link, h.genesis_version "
    "FROM unnest(%s::text[]) AS s(stream) "
    "LEFT JOIN LATERAL (SELECT originator_version, high FROM {log} WHERE originator_id=s.stream "
    "ORDER BY high DESC, originator_version DESC LIMIT 1) AS e ON true "
    "LEFT JOIN {heads} h ON h.stream=s.stream"
)


class PostgresArchiveRecorder(PostgresAuditTable, PostgresCopiedTrails, PostgresRoomReads, PostgresApplicationRecorder):
    """PostgreSQL application recorder that also maintains the archive's side tables."""

    # The store's binary values as they come: COPY takes bytes through the driver's C dumper (an empty bytes
    # added to is the same bytes).
    encode_states = staticmethod(to_msgpack_list)
    blob = b""

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
        self._fence = postgres_fence(self.datastore.schema)
        self._audit = SQL("{}.archive_audit").format(schema)
        self._append_audit = SQL("{}.archive_audit_chain").format(schema)
        self._stored_slots_sql = SQL(_STORED_SLOTS).format(log=self._events)
        self._stream_heads_sql = SQL(_STREAM_HEADS).format(log=self._events, heads=self._heads)
        self._upsert_heads = SQL(
            "INSERT INTO {} SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bytea[], %b::bigint[]) "
            "ON CONFLICT (stream) DO UPDATE SET "
            "version=EXCLUDED.version, link=EXCLUDED.link, genesis_version=EXCLUDED.genesis_version"
        ).format(self._heads)
        self._add_side_columns = SQL(
            "ALTER TABLE {} " + ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in SIDE_COLUMNS)
        ).format(self._events)
        # Made after an upgrade has filled the columns: one sort, not an entry maintained per row moved.
        self._made_last = [
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (originator_id, high, originator_version)")
            .format(Identifier(ORDER_INDEX), self._events),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (originator_id, second, originator_version) WHERE second<high")
            .format(Identifier(LATE_INDEX), self._events),
        ]
        self.sql_create_statements += [
            self._add_side_columns,
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
            *copied_trails_tables(self.datastore.schema),
            *lease_tables(self.datastore.schema),
            # The earlier append (returning nothing; a function's result type cannot be replaced).
            SQL("DROP FUNCTION IF EXISTS {}.archive_audit_append(bytea[], double precision[], bytea)").format(schema),
            self.audit_function(),
        ]

    def create_table(self) -> None:
        # Opening a store whose schema is current reads one row and locks no table (``archive.schema_ddl``);
        # processes setting one up at once take turns (CREATE OR REPLACE FUNCTION fails with "tuple concurrently
        # updated" otherwise).
        statements = [*self.sql_create_statements, *self._made_last]
        mark = digest([*(s.as_string() for s in statements), _MIGRATIONS])
        set_up(self.datastore, self.datastore.schema, f"store {self.events_table_name}", mark, self._set_up)
        self.datastore.register_type_adapters()

    def _set_up(self, curs: Any) -> None:
        """The library's statements and ours, then the upgrades, in one transaction; a statement that would lock
        a table to find it has nothing to do is left out (the store may be in use: ``archive.schema_ddl``)."""
        schema = self.datastore.schema
        for statement in self.sql_create_statements:
            if statement is self._add_side_columns:
                if missing := missing_columns(curs, schema, self.events_table_name, (n for n, _ in SIDE_COLUMNS)):
                    kinds = dict(SIDE_COLUMNS)
                    curs.execute(SQL("ALTER TABLE {} " + ", ".join(f"ADD COLUMN {n} {kinds[n]}" for n in missing))
                                 .format(self._events))
            elif "CREATE TYPE" in statement.as_string():
                # No IF NOT EXISTS for types: tried in a savepoint (the library's own transaction for each).
                with contextlib.suppress(DuplicateObject), curs.connection.transaction():
                    curs.execute(statement, prepare=False)
            elif needed(curs, schema, statement):
                curs.execute(statement, prepare=False)
        merge_postgres_index(curs, schema, self.events_table_name)
        drop_postgres_version_key(curs, schema, self.events_table_name)
        self._collate_rooms_bytewise(curs)
        for statement in self._made_last:
            if needed(curs, schema, statement):
                curs.execute(statement)

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
            # pass over positions that commit later), taken first, as an upgrade at open takes it, so that a
            # store being opened cannot deadlock. Ordered writers also make the look-up of the batch's
            # slots below see every key committed before it, and none committed until this one ends
            # (``archive.idempotency``).
            expected: dict[str, int] = kwargs["heads"]
            probe: Probe | None = kwargs.get("probe")
            # The lock, the streams' heads and the look-up of the batch's slots sent at once, in one round trip
            # (pipeline mode), not one each, the server idle between them (begin, two lock statements, heads,
            # planner settings, slots: six). The positions are drawn only once these pass: a batch refused
            # draws none (the sequence does not roll back).
            heads, slots = curs.connection.cursor(), curs.connection.cursor(row_factory=tuple_row)
            with curs.connection.pipeline():
                self._lock_table(curs)
                heads.execute(self._stream_heads_sql, (list(expected),), prepare=True)
                if probe:
                    self._send_stored_slots(slots, probe)
            highs = checked_highs(_stream_heads(heads.fetchall()), expected)
            if probe and probe.among(slots.fetchall()):
                raise IntegrityError("an event of the batch is stored already (its idempotency slot holds its key)")
            positions: list[int] | None = kwargs.get("positions")
            if positions:
                last = self._copy_at(curs, positions, rows.at(positions, highs))
            else:
                # The batch's positions drawn from the sequence at once and copied with the rows: under the lock
                # no other writer draws from it, so they are consecutive. A default of nextval() per row cost the
                # server ~0.5 us an event (~8% of its time in the append).
                curs.execute(self._draw_positions, (rows.count, self._events_name), prepare=True)
                last = curs.fetchone()["last"]
                drawn = range(last - rows.count + 1, last + 1)
                copy_rows(curs, self._copy_events_at, LOG_ROW_TYPES, rows.at(drawn, highs))
            new_rooms = list(kwargs.get("new_rooms", ()))
            chain_heads = rows.chain_heads()
            fence: Fence | None = kwargs.get("fence")
            lease = curs.connection.cursor(row_factory=tuple_row)
            with curs.connection.pipeline():  # one round trip for the statements after the copy
                if fence:  # last before the commit: a holder paused in the append finds the lease taken over
                    lease.execute(self._fence, (fence.name,), prepare=True)
                if new_rooms:
                    curs.executemany(
                        SQL("INSERT INTO {} VALUES (%s) ON CONFLICT DO NOTHING").format(self._rooms),
                        [(room,) for room in new_rooms],
                    )
                if chain_heads:
                    curs.execute(self._upsert_heads, _columns(chain_heads, 4), prepare=True)
                if kwargs.get("copied_marks"):
                    self._mark_copied(curs, kwargs["copied_marks"])
                self._notify_channel(curs)
            if fence and (why := refusal(fence, lease.fetchone())):
                raise Fenced(why)  # the transaction rolls back
        return positions or list(range(last - rows.count + 1, last + 1))

    def _copy_at(self, curs: Any, positions: list[int], rows: BatchRows) -> int:
        """Copied events at their source positions; the sequence then goes on after the last."""
        curs.execute(self.max_notification_id_statement)
        check_copy_positions(positions, curs.fetchone()["max"] or 0)
        copy_rows(curs, self._copy_events_at, LOG_ROW_TYPES, rows)
        curs.execute("SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                     (self._events_name, positions[-1]))
        return positions[-1]

    def stored_slots(self, probe: Probe) -> set[Slot]:
        """The probed slots that hold a key."""
        with self.datastore.transaction(commit=False) as curs:
            return self._stored_slots(curs, probe)

    def _stored_slots(self, curs: Any, probe: Probe) -> set[Slot]:
        rows = curs.connection.cursor(row_factory=tuple_row)
        self._send_stored_slots(rows, probe)
        return probe.among(rows.fetchall())

    def _send_stored_slots(self, rows: Any, probe: Probe) -> None:
        """The look-up of the stored rows of the probe's buckets on ``rows`` (a tuple cursor), its rows
        fetched by the caller: in pipeline mode, only once the pipeline has sent it."""
        # The planner guesses hundreds of rows in each bucket (its range is a parameter), so a batch's
        # thousand buckets look costly enough for JIT compilation, which takes ten times as long
        # (~50 ms) as the look-up itself, and for parallel workers. It guesses a third of the log late
        # (``second<high``: two columns compared, its default selectivity) and joins the buckets by hashing
        # every late event (or, with ``second=high`` in the first walk, seq-scans the log: 3 s a batch at 1M):
        # a bucket is a seek and a short range in each walk, a nested loop of index scans (24 ms for a
        # batch's 884 buckets at 1M, 10,337 rows).
        rows.execute("SELECT set_config('jit', 'off', true), set_config('enable_hashjoin', 'off', true), "
                     "set_config('enable_mergejoin', 'off', true), "
                     "set_config('max_parallel_workers_per_gather', '0', true)", prepare=True)
        # Thousands of rows a batch (the rooms' hours so far): as tuples in binary, made by the driver's C
        # loaders, not a dict each from text.
        spans = _columns(bucket_spans(probe.buckets), 3)
        rows.execute(self._stored_slots_sql, spans + spans, prepare=True, binary=True)

    def room_heads(self, originator_ids: Iterable[str]) -> dict[str, tuple[int, HeadRow | None]]:
        """Each stream's last version and its chain head (None before its chain began)."""
        with self.datastore.transaction(commit=False) as curs:
            stored = self._stream_heads(curs, originator_ids)
        return {oid: (version, head) for oid, (version, _, head) in stored.items()}

    def _stream_heads(self, curs: Any, oids: Iterable[str]) -> dict[str, StreamHead]:
        """Each stream's last stored version (0 if none), highest second so far, and chain head (None before its
        chain began)."""
        curs.execute(self._stream_heads_sql, (list(oids),), prepare=True)
        return _stream_heads(curs.fetchall())

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
            last, _, _ = self._stream_heads(curs, [oid])[oid]
            if last:
                curs.execute(SQL("INSERT INTO {} VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING").format(self._heads),
                             (oid, last, genesis, last + 1))
            # One walk of the stream's range of the order index (the log has no version key of its own).
            curs.execute(
                SQL("DELETE FROM {} WHERE originator_id=%s AND originator_version = ANY(%s)").format(self._events),
                (oid, list(versions)),
            )


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    """Rows as column lists, for statements over unnest(column arrays)."""
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]


def _stream_heads(rows: list[dict]) -> dict[str, StreamHead]:
    """The rows of ``_STREAM_HEADS`` by stream."""
    return {
        row["stream"]: (
            row["originator_version"] or 0,
            BEFORE_ANY_SECOND if row["high"] is None else row["high"],
            None if row["version"] is None else _head_row(row),
        )
        for row in rows
    }


def _head_row(row: dict) -> HeadRow:
    return (row["stream"], row["version"], bytes(row["link"]), row["genesis_version"])


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)
