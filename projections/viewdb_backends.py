"""The view database's two backends, SQLite and PostgreSQL, and opening one from a URL.

What they share (generations, table naming, batched writes, reads) is ``projections.viewdb``;
here is only what differs: locking, table listing, DDL types, COPY, connection settings.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteConnectionPool,
    SQLiteFactory,
    SQLiteTrackingRecorder,
)
from eventsourcing.utils import Environment

from archive.application import StoreLocation, ensure_postgres_schema
from archive.errors import StoreError
from archive.postgres_copy import copy_rows
from archive.schema_ddl import digest, set_up
from archive.sqlite_files import erase_wal_copies, new_database_pages
from archive.store_errors import store_error

from .columns import Columns, MsgpackColumn
from .viewdb import PREFIX, RULES, ViewRecorderMixin, named_table


class SQLiteViewRecorder(ViewRecorderMixin, SQLiteTrackingRecorder):
    """SQLite tracking recorder owning the view tables (one views file)."""

    tracking_table = "tracking"
    # Built at the end, a 1M-event rebuild's query indexes cost its main process ~4 s CPU (two sorts of every
    # line, one scan for the subject index), after the log was read, with nothing to overlap them; kept up by
    # the writer process (which waited a third of the build) they cost it about as much, while the log is read
    # (wall 0.75x, same CPU, interleaved at load 3.4-4.7). PostgreSQL's keep building them from the finished
    # tables: kept up by its COPY, a 1M-event build cost the server's backends 12.3 -> 17.6 and 14.3 -> 19.7 s
    # CPU (+37-43%; main and writer processes unchanged), wall not shorter (interleaved at load 5-7.5).
    index_while_building = True
    json_each = True

    def _write_rows(self, c: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        # sqlite3 binds a bytearray as it is, but bytes only after looking for an adapter and failing, an
        # AttributeError formatted and dropped: ~3,300 instructions a value (callgrind), one a transcript line
        # (its ``fields``): 6% of a rebuild's writer process (as the store's states, ``archive.sqlite_recorder``).
        if isinstance(rows, Columns):
            rows = Columns(*map(_blobs, rows.columns))
        c.executemany(statement, rows)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {PREFIX}generations (projection TEXT PRIMARY KEY, "
            "live INTEGER NOT NULL, building INTEGER)",
            f"CREATE TABLE IF NOT EXISTS {RULES} ({RULES_COLUMNS})",
        ]

    def _lock_generations(self, c: Any) -> None:
        # A write first takes SQLite's write lock, so the read that follows cannot go stale.
        c.execute(f"UPDATE {PREFIX}generations SET live=live WHERE 0")

    def _held_position(self, c: Any, projection: str, name: str) -> int:
        self._lock_generations(c)
        c.execute(f"SELECT MAX(notification_id) FROM {self.tracking_table} WHERE application_name=?", (name,))
        return c.fetchone()[0] or 0

    def erase_dropped_copies(self) -> None:
        """Dropped tables are overwritten (``secure_delete``) in pages still in the write-ahead log, which
        also holds older copies of their rows: copy it in and empty it."""
        try:
            erase_wal_copies(self.datastore)
        except PersistenceError as e:
            raise store_error("cannot erase the dropped views' older copies", e) from e

    def _tables_of(self, c: Any, projection: str, generation: int) -> list[str]:
        c.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE ? ESCAPE '\\'",
            (_like(f"{PREFIX}{projection}_") + "%" + _like(f"_g{generation}"),),
        )
        return [row["name"] for row in c.fetchall()]


class PostgresViewRecorder(ViewRecorderMixin, PostgresTrackingRecorder):
    """PostgreSQL tracking recorder owning the view tables (``view_*`` in one schema)."""

    placeholder = "%s"
    row_lock = " FOR SHARE"
    keys_after_building = True  # (``transcripts.view.REFS_KEY``)

    def __init__(self, datastore: Any, **kwargs: Any):
        super().__init__(datastore, **kwargs)
        from psycopg.sql import SQL, Identifier

        self.tracking_table = self.tracking_table_name
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (projection text PRIMARY KEY, "
                "live bigint NOT NULL, building bigint)"
            ).format(Identifier(self.datastore.schema), Identifier(PREFIX + "generations"))
        )
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {}.{} (" + self.ddl_types(RULES_COLUMNS) + ")").format(
                Identifier(self.datastore.schema), Identifier(RULES))
        )

    def create_table(self) -> None:
        # Views whose tables are set up already are opened reading one row, taking the schema's advisory lock
        # only when they are not: a views runner and API workers opening them at once would race in CREATE TABLE
        # IF NOT EXISTS (duplicate key in pg_type), one at a time, as the store's own set-up (``archive.schema_ddl``).
        mark = digest([statement.as_string() for statement in self.sql_create_statements])
        set_up(self.datastore, self.datastore.schema, f"views {self.tracking_table}", mark,
               lambda _: PostgresTrackingRecorder.create_table(self))

    def _qualify(self, table: str) -> str:
        return f'"{self.datastore.schema}"."{table}"'

    def _held_position(self, c: Any, projection: str, name: str) -> int:
        # The projection's generations row, not the tracking row: that exists only from a view's first commit
        # on, and two first commits would both read none. A second commit waits here, then reads the first's.
        c.execute(self._g("SELECT 1 FROM {g} WHERE projection=%s FOR UPDATE"), (projection,))
        c.execute(f"SELECT MAX(notification_id) AS held FROM {self._qualify(self.tracking_table)} "
                  "WHERE application_name=%s", (name,))
        return c.fetchone()["held"] or 0

    @contextmanager
    def _read(self):
        # No transaction: at READ COMMITTED each statement of one reads its own snapshot anyway, so
        # BEGIN and ROLLBACK would be two more round trips for nothing (the pool's connections are
        # in autocommit). A generation dropped between two statements fails the second on a missing
        # table, which ``read`` retries.
        with self.datastore.get_connection() as conn:
            yield conn.cursor()

    def _write_rows(self, c: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        # A plain INSERT of many rows (a rebuild's, a backlog's) goes as COPY: a fraction of the
        # round trips and parsing of executemany. In binary, typed by the table's own columns (a query
        # for none of its rows): no hex text of the msgpack blobs or decimal text of the numbers to make
        # here and parse in the server (200k transcript lines: client CPU 0.43 -> 0.17 s, server's 0.9 -> 0.48 s).
        plain = _PLAIN_INSERT.fullmatch(statement)
        if plain is None or len(rows) < COPY_FROM:
            c.executemany(statement, rows)
            return
        if isinstance(rows, Columns):
            rows = Columns(*map(_copied, rows.columns))
        table, columns = plain["table"], plain["columns"]
        c.execute(f"SELECT {columns[1:-1]} FROM {table} LIMIT 0")
        types = [column.type_code for column in c.description]
        statement = f"COPY {table} {columns} FROM STDIN (FORMAT BINARY)"
        if isinstance(rows, Columns) and all(t == _INT8 and type(v) is array for t, v in zip(types, rows.columns)):
            with c.copy(statement) as copy:
                copy.write(_binary_int8_rows(rows.columns))
            return
        # As the store's append formats its rows (the driver's C formatter of a row, and its C dumper of bytea, not
        # the Python one ``set_types`` picks): a 1M-event build's transcript lines, the writer process's CPU
        # 0.054 -> 0.029 s a 100k lines (``write_row`` with the C dumper: 0.037).
        copy_rows(c, statement, types, [rows])

    def ddl_types(self, statement: str) -> str:
        # A table keyed by its primary key alone is what PostgreSQL makes anyway (with a heap beside).
        return statement.replace("INTEGER", "BIGINT").replace("BLOB", "BYTEA").replace(" WITHOUT ROWID", "")

    def _lock_generations(self, c: Any) -> None:
        c.execute(f"LOCK TABLE {self._qualify(PREFIX + 'generations')} IN EXCLUSIVE MODE")

    def add_indexes(self, projection: str, generation: int, ddl: Iterable[str]) -> None:
        """Each index built by a backend of its own, at once (each is one backend's scan and sort of a
        table, which the end of a rebuild waits for; PostgreSQL lets several build on one table).
        Also gather the planner's statistics: a rebuilt generation goes live before autovacuum
        has looked at it, and without them a 50-line transcript page read its room's whole day
        (bitmap scan and sort, ~860 buffers and 1.7-7 ms instead of the index walk's 41 and 0.1 ms).
        Each table's ``ANALYZE`` (which waits for any index build on its table) in the thread that ends its last
        build: one table's statistics are gathered while another's indexes are still being built, not all after
        the last build."""
        add = super().add_indexes
        try:
            with self._write() as c:
                tables = self._tables_of(c, projection, generation)
        except (PersistenceError, psycopg.Error) as e:
            raise store_error(f"cannot index projection {projection}", e) from e
        # In the order given (the longest build first: with fewer builders than builds it starts first), then
        # the tables no statement names, for their statistics.
        work: list[tuple[str, str | None]] = [
            (self.table_name(projection, generation, named_table(projection, statement)), statement) for statement in ddl
        ]
        left = {table: 0 for table in tables}
        for table, _ in work:
            left[table] = left.get(table, 0) + 1
        work += [(table, None) for table, count in left.items() if not count]
        counting = threading.Lock()

        def build(table: str, statement: str | None) -> None:
            if statement is not None:
                add(projection, generation, [statement])
                with counting:
                    left[table] -= 1
                    if left[table]:
                        return
            try:
                with self._write() as c:
                    # Unless a statement dropped it: any DDL may come here (tests make older layouts so).
                    self._analyse(c, [table] if table in self._tables_of(c, projection, generation) else [])
            except (PersistenceError, psycopg.Error) as e:
                raise store_error(f"cannot analyse projection {projection}", e) from e

        with ThreadPoolExecutor(INDEX_BUILDERS) as builders:
            # list: the first error a build met is raised here
            list(builders.map(lambda task: build(*task), work))

    def _analyse(self, c: Any, tables: list[str]) -> None:
        for table in tables:
            c.execute(f"ANALYZE {self._qualify(table)}")

    def _tables_of(self, c: Any, projection: str, generation: int) -> list[str]:
        c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname=%s AND tablename LIKE %s",
            (self.datastore.schema, _like(f"{PREFIX}{projection}_") + "%" + _like(f"_g{generation}")),
        )
        return [row["tablename"] for row in c.fetchall()]


ViewRecorder = SQLiteViewRecorder | PostgresViewRecorder
# ``viewdb.RULES``: a table apart from the generations' (not two columns of theirs), made where missing as every
# table is when the views are opened: a views database made before it needs no ALTER (nor its lock, nor the race
# of two processes opening it at once), and a generation's row goes with its tables (``_drop``).
RULES_COLUMNS = ("projection TEXT NOT NULL, generation INTEGER NOT NULL, rules INTEGER NOT NULL, "
                 "PRIMARY KEY (projection, generation)")
_PLAIN_INSERT = re.compile(r"INSERT INTO (?P<table>\S+) (?P<columns>\([\w, ]+\)) VALUES \((%s,?)+\)")
COPY_FROM = 100  # rows: below it, executemany's fewer steps win
INDEX_BUILDERS = os.cpu_count() or 1  # connections building a rebuild's indexes at once (PostgreSQL)


class _ViewSQLitePool(SQLiteConnectionPool):
    def _create_connection(self) -> Any:
        # A new views file gets the store's large pages: a rebuild's writer process (the busier one on SQLite)
        # spent 15-20% less CPU inserting a 1M-event build's rows and committing them.
        if not self.is_sqlite_memory_mode:
            new_database_pages(self.db_name, self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT)
        connection = super()._create_connection()
        raw = connection._sqlite_conn
        # A commit holds the view rows and their position together, and views can
        # always be rebuilt: a power loss undoing the last commits costs nothing.
        raw.execute("PRAGMA synchronous=NORMAL")
        # Message ids are random: their index pages are touched all over; keep them cached.
        raw.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        # A purge rebuilds the views and drops the old tables: their content is overwritten, not left in free pages.
        raw.execute("PRAGMA secure_delete=ON")
        # A rebuild ends by indexing the tables it filled, a sort of every row each, which the process
        # waits for: helper threads sort parts of it (1M lines: wall 9.7/5.9 -> 7.2/4.3 s, load 7.4).
        raw.execute(f"PRAGMA threads={SORT_THREADS}")
        return connection


class ViewSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite infrastructure with the views' connection settings."""

    def __init__(self, env: Any):
        super().__init__(env)
        pool = self.datastore.pool
        self.datastore.pool = _ViewSQLitePool(db_name=pool.db_name, lock_timeout=pool.lock_timeout)
        pool.close()


SQLITE_CACHE_KIB = 128 * 1024
SORT_THREADS = min(os.cpu_count() or 1, 4)


def _blobs(column: Sequence[Any]) -> Sequence[Any]:
    """A column of bytes or msgpack values as bytearrays (see ``SQLiteViewRecorder._write_rows``); any other as it is."""
    if type(column) is MsgpackColumn:
        return list(map(bytearray, column.values()))
    if not column or type(column[0]) is not bytes:
        return column
    return [value if value is None else bytearray(value) for value in column]


def _copied(column: Sequence[Any]) -> Sequence[Any]:
    """What COPY writes of a column: a ``MsgpackColumn``'s values as views of its array, which it binds as they
    are (as fast as bytes), not each copied into bytes first; any other column as it is."""
    return column.values() if type(column) is MsgpackColumn else column


def _binary_int8_rows(columns: Sequence[array]) -> bytearray:
    """COPY's binary form (header, rows, trailer) of rows of 64-bit integers given column by column (each an
    ``array("q")``, as a rebuild's writer process gets them), made by one strided copy per byte of a row,
    not a call per row (``write_row``; a 1M-event build's refs are 1.8M rows of three). All in one buffer, filled
    in place: header + rows + trailer copied the rows twice more, three copies held at once."""
    count, width, start = len(columns[0]), 2 + 12 * len(columns), len(_BINARY_SIGNATURE)
    end = start + width * count
    data = bytearray(end + len(_BINARY_TRAILER))
    data[:start], data[end:] = _BINARY_SIGNATURE, _BINARY_TRAILER
    data[start + 1:end:width] = bytes([len(columns)]) * count  # the field count (a 16-bit number < 256)
    for number, column in enumerate(columns):
        field = start + 2 + 12 * number
        data[field + 3:end:width] = b"\x08" * count  # each field's length (32 bits): 8 bytes
        values = array("q", column)
        if sys.byteorder == "little":
            values.byteswap()  # COPY's numbers are big-endian
        numbers = values.tobytes()
        for byte in range(8):
            data[field + 4 + byte:end:width] = numbers[byte::8]
    return data


_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # the format's mark, flags and header extension length
_BINARY_TRAILER = b"\xff\xff"  # a field count of -1: no more rows
_INT8 = 20  # PostgreSQL's type oid of bigint


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def default_views_url(store_url: str) -> str:
    """``views.sqlite`` beside a SQLite store; the store's own database and schema otherwise."""
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        return f"sqlite:///{location.path.parent / 'views.sqlite'}"
    return store_url


def open_view_recorder(url: str) -> tuple[ViewRecorder, Callable[[], None]]:
    """The view recorder at ``url`` (tables created if needed) and a function that closes it."""
    location = StoreLocation.parse(url)
    if location.kind == "sqlite":
        Path(location.path).parent.mkdir(parents=True, exist_ok=True)
        env = {**location.environment(), "PERSISTENCE_MODULE": "projections.viewdb_backends:ViewSQLiteFactory"}
        recorder_class: type = SQLiteViewRecorder
    else:
        ensure_postgres_schema(location)
        env = location.environment()
        env.pop("APPLICATION_RECORDER_TOPIC")
        recorder_class = PostgresViewRecorder
    try:
        # The environment's name makes eventsourcing call the PostgreSQL table view_tracking.
        factory = InfrastructureFactory.construct(Environment(name="view", env=env))
        recorder = factory.tracking_recorder(recorder_class)
        recorder.url = url
    except (PersistenceError, OSError, psycopg.Error) as e:
        raise StoreError(f"cannot open the views at {url!r}: {e}") from e
    return recorder, factory.close
