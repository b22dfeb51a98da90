"""Audit trails copied from another store, kept beside the store's own (table ``archive_audit_copied``).

A store's own trail (``archive_audit``, stream ``chat-archive:audit``) holds the reads made on it. The trail of the
store it was migrated (``chat-archive migrate``) or restored (``import`` of an ``export-log`` backup) from is copied
record for record under that trail's name with ``:copied`` appended (``records.copied_trail``), at its sequence
numbers, each link recomputed on the way in from its origin's genesis (``chain.genesis``): it is the source's chain,
so its head is the source's and the source's checkpoints of it hold in the copy (``integrity`` attributes each
checkpointed head to the trail holding its link). Neither trail takes the other's numbers: reads on the target
between two runs of a migration stay the target's, and the next run goes on with the source's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from psycopg.sql import SQL, Composed, Identifier

# (trail, seq, at, state, link)
CopiedRow = tuple[str, int, float, bytes, bytes]

SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS archive_audit_copied (trail TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, "
    "state BLOB NOT NULL, link BLOB NOT NULL, PRIMARY KEY (trail, seq)) WITHOUT ROWID"
)
# Each trail's last record, found by stepping from trail to trail down the primary key (a handful of trails, each of
# millions of records: a GROUP BY would read every one, on every checkpoint and chain-heads read).
_HEADS = (
    "WITH RECURSIVE trails(trail) AS (SELECT (SELECT trail FROM {t} ORDER BY trail LIMIT 1) UNION ALL "
    "SELECT (SELECT trail FROM {t} WHERE trail > trails.trail ORDER BY trail LIMIT 1) FROM trails "
    "WHERE trails.trail IS NOT NULL) "
    "SELECT trail, (SELECT seq FROM {t} c WHERE c.trail = trails.trail ORDER BY seq DESC LIMIT 1) AS seq, "
    "(SELECT link FROM {t} c WHERE c.trail = trails.trail ORDER BY seq DESC LIMIT 1) AS link "
    "FROM trails WHERE trail IS NOT NULL ORDER BY trail"
)
_SELECT = ("SELECT seq, state, link FROM {t} WHERE trail={p} AND seq>{p} AND seq<={p} AND at>={p} AND at<{p} "
           "ORDER BY seq LIMIT {p}")  # fmt: skip


def postgres_table(table: Composed) -> Composed:
    return SQL(
        "CREATE TABLE IF NOT EXISTS {} (trail text NOT NULL, seq bigint NOT NULL, at double precision NOT NULL, "
        "state bytea NOT NULL, link bytea NOT NULL, PRIMARY KEY (trail, seq))"
    ).format(table)


class SQLiteCopiedTrails:
    """The copied trails' methods of the SQLite recorder."""

    def insert_copied(self, rows: Sequence[CopiedRow]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany("INSERT INTO archive_audit_copied VALUES (?,?,?,?,?)", rows)

    def copied_heads(self) -> list[tuple[str, int, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_HEADS.format(t="archive_audit_copied"))
            return [(trail, seq, bytes(link)) for trail, seq, link in c.fetchall()]

    def select_copied(self, trail: str, after: int, through: int, since: float, until: float, limit: int) -> list:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SELECT.format(t="archive_audit_copied", p="?"), (trail, after, through, since, until, limit))
            return [tuple(row) for row in c.fetchall()]


class PostgresCopiedTrails:
    """The copied trails' methods of the PostgreSQL recorder."""

    @functools.cached_property
    def _copied(self) -> Composed:
        return SQL("{}.archive_audit_copied").format(Identifier(self.datastore.schema))

    def insert_copied(self, rows: Sequence[CopiedRow]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s)").format(self._copied), rows)

    def copied_heads(self) -> list[tuple[str, int, bytes]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL(_HEADS.format(t="{t}")).format(t=self._copied))
            return [(row["trail"], row["seq"], bytes(row["link"])) for row in curs.fetchall()]

    def select_copied(self, trail: str, after: int, through: int, since: float, until: float, limit: int) -> list:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL(_SELECT.format(t="{t}", p="%s")).format(t=self._copied),
                         (trail, after, through, since, until, limit))  # fmt: skip
            return [(row["seq"], bytes(row["state"]), bytes(row["link"])) for row in curs.fetchall()]
