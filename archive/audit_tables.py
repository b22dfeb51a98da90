"""The audit trail's table (``archive_audit``) in the store's database, for the application recorders.

One row per record: its sequence number, time, msgpack state and hash-chain link, each
link chaining the previous one as a stream's events do (``archive.chain``). Records are
appended in batches (the store's group commit), each batch in one transaction.
"""

from __future__ import annotations

import functools
import sqlite3
import struct
import weakref
from collections.abc import Sequence

import psycopg.errors
from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError
from psycopg import generators, pq
from psycopg.sql import SQL, Composed

from . import chain
from .events import AUDIT_STREAM

# (sequence number, state, link) of an audit record
AuditRow = tuple[int, bytes, bytes]
_GENESIS = chain.genesis(AUDIT_STREAM)
# A row's parameters to libpq: (seq, at, state, link) as int8, float8, bytea, bytea (type oids), all binary.
_AUDIT_TYPES = (20, 701, 17, 17)
_BINARY = (1, 1, 1, 1)
_INT8, _FLOAT8 = struct.Struct("!q"), struct.Struct("!d")
_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name
_DUPLICATE_STATEMENT = b"42P05"  # duplicate_prepared_statement
# Batches of up to this many records use an INSERT prepared once a connection for their size; larger ones (a burst's)
# are parsed each time: a statement for every size the group commit makes (up to 200) would each hold its parse tree
# in the server for the connection's life.
MOST_PREPARED = 16


class SQLiteAuditTable:
    """Audit-trail methods of the SQLite recorder (its ``datastore``; the table is created with its own)."""

    # (seq, link) of the last record this recorder wrote: the trail's head, unless another process
    # (`serve --workers`) wrote after it.
    _audit_last: tuple[int, bytes] | None = None

    def insert_audit(self, records: Sequence[tuple[bytes, float]]) -> None:
        """Append audit records (state, time), each chained to the one before, in one transaction: one
        INSERT statement (its own transaction), chained on the last record this recorder wrote, else on
        the head read just before. A record written since by another process holds the first number, so
        the statement fails on it and nothing is written: the head is read again at once (a statement on
        the same connection, not the library's BEGIN, SELECT, ROLLBACK: with two processes most batches
        do, 2 x 4 threads x 500 records 0.60-0.63 -> 0.53-0.56 s CPU, load 15), and a second failure goes
        to the caller, which retries after a short random sleep.

        One statement, so SQLite's write lock is taken and let go inside one call, which runs without the
        interpreter lock. With BEGIN, the head's read, the rows and COMMIT as four calls through the
        library's transaction, the lock was held while the thread took the interpreter lock back from the
        request threads between them, another process's writer failed or slept meanwhile, and a record
        cost 79-82 us of CPU against 42-45 now (interleaved, load 13). Not BEGIN IMMEDIATE, nor an flock
        beside the database: their waiter waits as long as the holder's thread takes to get the
        interpreter lock back (and BEGIN IMMEDIATE's in SQLite's busy handler, 1, 2, 5, 10 ... 100 ms
        steps: the two workers' p99 doubled, d8e9f90)."""
        with self.datastore.get_connection(commit=True) as conn:
            db = conn._sqlite_conn
            for last in (self._audit_last, None) if self._audit_last else (None,):
                try:
                    rows = _chained_audit(last or _sqlite_head(db), records)
                    db.execute(_insert_rows(len(rows)), [value for row in rows for value in row])
                except sqlite3.IntegrityError as e:  # a number taken by another process: its head is newer
                    self._audit_last, error = None, e
                    continue
                except sqlite3.OperationalError as e:  # locked past the busy timeout
                    raise OperationalError(e) from e
                except sqlite3.Error as e:
                    raise PersistenceError(e) from e
                self._audit_last = rows[-1][0], rows[-1][3]
                return
        raise IntegrityError(error) from error

    def audit_head(self) -> tuple[int, bytes] | None:
        try:
            with self.datastore.get_connection(commit=False) as conn:
                return _sqlite_head(conn._sqlite_conn)
        except sqlite3.Error as e:
            raise PersistenceError(e) from e

    def select_audit(self, after: int, through: int, since: float, until: float, limit: int) -> list[AuditRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT seq, state, link FROM archive_audit WHERE seq>? AND seq<=? AND at>=? AND at<? "
                "ORDER BY seq LIMIT ?",
                (after, through, since, until, limit),
            )
            return [tuple(row) for row in c.fetchall()]


class PostgresAuditTable:
    """Audit-trail methods of the PostgreSQL recorder (its ``datastore``, ``_audit`` table and ``_append_audit``
    function names)."""

    # (seq, link) of the last record this recorder wrote; whether no other process (`serve --workers`,
    # another host) wrote between its last two batches, so that the next is chained on it in Python.
    _audit_last: tuple[int, bytes] | None = None
    _audit_alone = True

    def audit_function(self) -> Composed:
        """The server-side append (created with the tables): a batch is one statement, so one round trip
        in autocommit, its own transaction. Writers queue on a table lock, taken before the head is read
        (each statement of the function reads a fresh snapshot), so no two take the same number. The
        links are ``chain.link``'s: SHA-256(previous link || 8-byte big-endian number || state). It
        returns the head it chained on and the new one."""
        return SQL(
            "CREATE OR REPLACE FUNCTION {append}(states bytea[], ats double precision[], genesis bytea, "
            "OUT before bigint, OUT seq bigint, OUT link bytea) LANGUAGE plpgsql AS $$ "
            "DECLARE n bigint; l bytea; "
            "BEGIN "
            "LOCK TABLE {audit} IN SHARE ROW EXCLUSIVE MODE; "
            "SELECT a.seq, a.link INTO n, l FROM {audit} a ORDER BY a.seq DESC LIMIT 1; "
            "IF NOT FOUND THEN n := 0; l := genesis; END IF; "
            "before := n; "
            "FOR i IN 1 .. cardinality(states) LOOP "
            "n := n + 1; l := sha256(l || int8send(n) || states[i]); "
            "INSERT INTO {audit} VALUES (n, ats[i], states[i], l); "
            "END LOOP; "
            "seq := n; link := l; "
            "END $$"
        ).format(append=self._append_audit, audit=self._audit)

    @functools.cached_property
    def _append_audit_call(self) -> Composed:
        return SQL("SELECT * FROM {}(%b, %b, %b)").format(self._append_audit)

    def insert_audit(self, records: Sequence[tuple[bytes, float]]) -> None:
        """Append audit records (state, time), each chained to the one before, in one transaction.

        While this recorder is the trail's only writer, one INSERT of the rows chained in Python on the
        last record it wrote: a number taken meanwhile by another process fails it whole (the primary
        key), and the batch goes through the server-side append (``audit_function``) instead, which
        chains on the head under the table lock. That one also serves the first batch, and every batch
        while another writer was seen between this one's (``alone``): then one round trip,
        not a failed INSERT and the append. Each batch is one statement (its own transaction in
        autocommit), binary parameters, prepared.

        The INSERT against the append's call, one record a call, one thread (interleaved, load 0.2):
        97 against 137-161 us of client CPU, 100 against 160-185 us of the backend's, 297 against
        417-484 us wall (arrays cost the client, the lock, head read and plpgsql loop the backend).

        The connection is taken from the pool and given back directly, the driver's errors said as the
        library's here: the library's ``get_connection`` (opening the pool, type adapters, a generator
        context, the connection's own context committing nothing in autocommit) cost 72k instructions
        against the pool's getconn and putconn's 30k (callgrind: a batch of one record 199k -> 160k,
        a request's whole record_read 237k -> 197k)."""
        pool = self.datastore.pool
        try:
            conn = pool.getconn()
            try:
                self._insert_audit_on(conn, records)
            finally:
                pool.putconn(conn)  # a broken connection is dropped, not handed out again
        except psycopg.IntegrityError as e:  # a state missing from the batch: nothing written
            raise IntegrityError(e) from e
        except psycopg.OperationalError as e:  # the connection, the pool's wait: the caller tries again
            raise OperationalError(e) from e
        except psycopg.Error as e:
            raise PersistenceError(e) from e

    def _insert_audit_on(self, conn, records: Sequence[tuple[bytes, float]]) -> None:
        """``insert_audit`` on a connection of the pool."""
        last = self._audit_last
        if last is not None and self._audit_alone:
            rows = _chained_audit(last, records)
            try:
                self._exec_audit_insert(conn, rows)
            except psycopg.errors.UniqueViolation:
                pass  # another process wrote after it: chained on the head, under the lock
            else:
                self._audit_last = rows[-1][0], rows[-1][3]
                return
        before, seq, link = conn.execute(
            self._append_audit_call,
            ([state for state, _ in records], [at for _, at in records], _GENESIS),
            prepare=True,
        ).fetchone().values()
        self._audit_last, self._audit_alone = (seq, bytes(link)), alone(last, before)

    def _exec_audit_insert(self, conn, rows: list[tuple]) -> None:
        """The INSERT of ``rows`` sent through libpq itself, binary parameters, prepared once a connection for
        a batch size (up to ``MOST_PREPARED`` records), its answer waited for by the driver's wait (without the
        interpreter lock; Ctrl-C cancels it) and its errors the driver's. The driver's cursor (``execute(..., prepare=True)``) builds a query,
        adapters, a prepare cache lookup and a cursor for every call: a request's record_read, a batch of one
        record, took 197k instructions through it and 119k so (callgrind; 500 records on PostgreSQL), the
        client CPU of ``_insert_audit`` 134-139 -> 101-106 us (interleaved, load 4.8). That is the leader's
        Python between one commit and the next, which the requests of the next wait through."""
        n = len(rows)
        params = []
        for seq, at, state, link in rows:
            params += (_INT8.pack(seq), _FLOAT8.pack(at), state, link)
        if n > MOST_PREPARED:
            conn.pgconn.send_query_params(self._audit_insert(n, conn), params, _AUDIT_TYPES * n, _BINARY * n)
            _check(conn, _result(conn))
            return
        name = b"archive_audit_insert_%d" % n
        by_connection = self.__dict__.setdefault("_audit_prepared", weakref.WeakKeyDictionary())
        prepared = by_connection.get(conn)
        if prepared is None:
            prepared = by_connection[conn] = set()
        for again in (False, True):
            if n not in prepared:
                _prepare(conn, name, self._audit_insert(n, conn), _AUDIT_TYPES * n)
                prepared.add(n)
            conn.pgconn.send_query_prepared(name, params, _BINARY * n)
            result = _result(conn)
            # The driver deallocates every prepared statement of a connection after a ROLLBACK (or DROP, ALTER)
            # on it: nothing was written, it is prepared again.
            if not again and result.error_field(pq.DiagnosticField.SQLSTATE) == _NO_SUCH_STATEMENT:
                prepared.clear()
                continue
            _check(conn, result)
            return

    def _audit_insert(self, n: int, conn) -> bytes:
        """The INSERT of ``n`` rows, with libpq's numbered placeholders."""
        rows = ",".join(f"(${i + 1},${i + 2},${i + 3},${i + 4})" for i in range(0, 4 * n, 4))
        return SQL("INSERT INTO {} VALUES ").format(self._audit).as_bytes(conn) + rows.encode()

    def audit_head(self) -> tuple[int, bytes] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT seq, link FROM {} ORDER BY seq DESC LIMIT 1").format(self._audit))
            row = curs.fetchone()
            return (row["seq"], bytes(row["link"])) if row else None

    def select_audit(self, after: int, through: int, since: float, until: float, limit: int) -> list[AuditRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT seq, state, link FROM {} WHERE seq>%s AND seq<=%s AND at>=%s AND at<%s "
                    "ORDER BY seq LIMIT %s"
                ).format(self._audit),
                (after, through, since, until, limit),
            )
            return [(row["seq"], bytes(row["state"]), bytes(row["link"])) for row in curs.fetchall()]


def _prepare(conn, name: bytes, statement: bytes, types: tuple[int, ...]) -> None:
    """``statement`` prepared as ``name`` on ``conn``. A statement of that name there already was left by an append
    interrupted (Ctrl-C) after the server prepared it and before the store noted it: deallocated and prepared anew
    (it may even be another's), not an error on every append of that size on the connection."""
    for again in (False, True):
        conn.pgconn.send_prepare(name, statement, types)
        result = _result(conn)
        if not again and result.error_field(pq.DiagnosticField.SQLSTATE) == _DUPLICATE_STATEMENT:
            conn.pgconn.send_query(b"DEALLOCATE " + name)
            _check(conn, _result(conn))
            continue
        _check(conn, result)
        return


def _result(conn) -> pq.abc.PGresult:
    """The result of the statement sent on ``conn``, waited for as the driver waits (without the interpreter
    lock; Ctrl-C cancels the statement)."""
    (result,) = conn.wait(generators.execute(conn.pgconn))
    return result


def _check(conn, result) -> None:
    """Raise the driver's error for a failed libpq result (``psycopg.errors.UniqueViolation`` for a taken number;
    a connection gone, ``OperationalError``: the pool drops it, the store tries again on another)."""
    if result.status == pq.ExecStatus.COMMAND_OK:
        return
    if conn.pgconn.status == pq.ConnStatus.BAD:
        raise psycopg.OperationalError(result.error_message.decode(conn.info.encoding, "replace").strip())
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def _sqlite_head(db: sqlite3.Connection) -> tuple[int, bytes] | None:
    """(seq, link) of the trail's last record: one statement, its own read transaction."""
    row = db.execute("SELECT seq, link FROM archive_audit ORDER BY seq DESC LIMIT 1").fetchone()
    return tuple(row) if row else None


def alone(last: tuple[int, bytes] | None, before: int) -> bool:
    """Whether a writer whose last record was ``last`` (none: its first batch) wrote the trail alone,
    the server-side append having chained its batch on record ``before``: then its next batch is
    chained in Python; while another process writes between its batches, that INSERT would fail."""
    return last is None or before == last[0]


@functools.lru_cache(maxsize=64)
def _insert_rows(n: int) -> str:
    return "INSERT INTO archive_audit VALUES " + ",".join(["(?,?,?,?)"] * n)


def _chained_audit(last: tuple[int, bytes] | None, records: Sequence[tuple[bytes, float]]) -> list[tuple]:
    """Rows (seq, at, state, link) of ``records`` appended after ``last`` (seq, link) of the trail."""
    seq, link = last if last else (0, chain.genesis(AUDIT_STREAM))
    rows = []
    for state, at in records:
        seq += 1
        link = chain.link(link, seq, state)
        rows.append((seq, at, state, link))
    return rows
