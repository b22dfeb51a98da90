"""The audit trail's table (``archive_audit``) in the store's database, for the application recorders.

One row per record: its sequence number, time, msgpack state and hash-chain link, each
link chaining the previous one as a stream's events do (``archive.chain``). Records are
appended in batches (the store's group commit), each batch in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import ClientCursor
from psycopg.sql import SQL

from . import chain
from .events import AUDIT_STREAM

# (sequence number, state, link) of an audit record
AuditRow = tuple[int, bytes, bytes]


class SQLiteAuditTable:
    """Audit-trail methods of the SQLite recorder (its ``datastore``; the table is created with its own)."""

    def insert_audit(self, records: Sequence[tuple[bytes, float]]) -> None:
        """Append audit records (state, time), each chained to the one before, in one transaction. A racing
        writer in another process (`serve --workers`) makes it fail, on a sequence number or on the upgrade
        of its read to a write (SQLITE_BUSY): the caller retries after a short random sleep.

        Not BEGIN IMMEDIATE, though it never fails that way: its waiter sleeps in SQLite's busy handler
        (1, 2, 5, 10 ... 100 ms steps) while the other process takes the lock again and again, and the
        two workers' p99 doubled (transcript pages at 1M: 66-107 ms against 31-77 ms, interleaved)."""
        with self.datastore.transaction(commit=True) as c:
            c.execute("SELECT seq, link FROM archive_audit ORDER BY seq DESC LIMIT 1")
            last = c.fetchone()
            c.executemany("INSERT INTO archive_audit VALUES (?,?,?,?)", _chained_audit(tuple(last) if last else None, records))

    def audit_head(self) -> tuple[int, bytes] | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT seq, link FROM archive_audit ORDER BY seq DESC LIMIT 1")
            row = c.fetchone()
            return tuple(row) if row else None

    def select_audit(self, after: int, since: float, until: float, limit: int) -> list[AuditRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT seq, state, link FROM archive_audit WHERE seq>? AND at>=? AND at<? ORDER BY seq LIMIT ?",
                (after, since, until, limit),
            )
            return [tuple(row) for row in c.fetchall()]


class PostgresAuditTable:
    """Audit-trail methods of the PostgreSQL recorder (its ``datastore`` and ``_audit`` table name)."""

    def insert_audit(self, records: Sequence[tuple[bytes, float]]) -> None:
        """Append audit records (state, time), each chained to the one before, in one transaction (writers
        queue on a table lock, so no two take the same number).

        Two round trips: BEGIN, the lock and the head's read, then the rows and COMMIT, each sent as
        one string (client-side binding). A request waits for its record's commit, and on a busy host
        every round trip also waits for PostgreSQL's backend to be scheduled: a statement at a time
        (eight round trips with the driver's BEGIN and its executemany) cost 40% more client CPU and
        a third more wait per record."""
        with self.datastore.get_connection() as conn:
            curs = ClientCursor(conn)
            try:
                curs.execute(
                    SQL("BEGIN; LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE; SELECT seq, link FROM {} ORDER BY seq DESC LIMIT 1")
                    .format(self._audit, self._audit)
                )
                curs.nextset(), curs.nextset()  # past BEGIN's and LOCK's results
                last = curs.fetchone()
                rows = _chained_audit((last["seq"], bytes(last["link"])) if last else None, records)
                values = SQL(",").join(SQL("(%s, %s, %s, %s)") for _ in rows)
                curs.execute(SQL("INSERT INTO {} VALUES {}; COMMIT").format(self._audit, values), [v for r in rows for v in r])
            except BaseException:
                conn.rollback()  # the transaction began in SQL: the pool must not get it back open
                raise

    def audit_head(self) -> tuple[int, bytes] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT seq, link FROM {} ORDER BY seq DESC LIMIT 1").format(self._audit))
            row = curs.fetchone()
            return (row["seq"], bytes(row["link"])) if row else None

    def select_audit(self, after: int, since: float, until: float, limit: int) -> list[AuditRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT seq, state, link FROM {} WHERE seq>%s AND at>=%s AND at<%s ORDER BY seq LIMIT %s"
                ).format(self._audit),
                (after, since, until, limit),
            )
            return [(row["seq"], bytes(row["state"]), bytes(row["link"])) for row in curs.fetchall()]


def _chained_audit(last: tuple[int, bytes] | None, records: Sequence[tuple[bytes, float]]) -> list[tuple]:
    """Rows (seq, at, state, link) of ``records`` appended after ``last`` (seq, link) of the trail."""
    seq, link = last if last else (0, chain.genesis(AUDIT_STREAM))
    rows = []
    for state, at in records:
        seq += 1
        link = chain.link(link, seq, state)
        rows.append((seq, at, state, link))
    return rows
