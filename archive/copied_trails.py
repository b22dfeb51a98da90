"""Audit trails copied from another store, kept beside the store's own (table ``archive_audit_copied``).

A store's own trail (``archive_audit``, stream ``chat-archive:audit``) holds the reads made on it. The trail of the
store it was migrated (``chat-archive migrate``) or restored (``import`` of an ``export-log`` backup) from is copied
record for record under that trail's name with ``:copied`` appended (``records.copied_trail``), at its sequence
numbers, each link recomputed on the way in from its origin's genesis (``chain.genesis``): it is the source's chain,
so its head is the source's, and a copy goes on only with the trail it was copied from (its head's link is the
source's at that record: ``AuditStore.copy_audit``). Neither trail takes the other's numbers: reads on the target
between two runs of a migration stay the target's, and the next run goes on with the source's.

The source's checkpoints, copied with its log at their positions, name its trails by the names they had there
(its own ``chat-archive:audit``, which is the copy here). A copy starts from the same genesis as the store's own
trail, so a link names no store: the copy records instead how far the log's checkpoints came with it (table
``archive_copied_checkpoints``: the copied trail, the last log position a migration or a restore appended; the
source's own records, one copy deeper), and ``integrity`` gives a checkpointed head of an audit trail to the trail
of the store that wrote the checkpoint. The marks are written in the transaction of the page of copied events they
mark (``EventStore.append_copies``): a copy stopped after a page's commit and before a mark of its own would leave
the source's checkpoints to the store's own trail, which `verify --integrity` would report broken.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from psycopg.sql import SQL, Composed, Identifier

from .records import AUDIT_STREAM, copied_trail

# (trail, seq, at, state, link)
CopiedRow = tuple[str, int, float, bytes, bytes]

SQLITE_TABLES = (
    "CREATE TABLE IF NOT EXISTS archive_audit_copied (trail TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, "
    "state BLOB NOT NULL, link BLOB NOT NULL, PRIMARY KEY (trail, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS archive_copied_checkpoints (trail TEXT PRIMARY KEY, last_position INTEGER NOT NULL) "
    "WITHOUT ROWID",
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


# A mark only grows: a later run of a migration appends after the earlier's.
_MARK = ("INSERT INTO {t} AS m VALUES ({p}, {p}) ON CONFLICT (trail) DO UPDATE SET "
         "last_position = {greatest}(m.last_position, excluded.last_position)")  # fmt: skip


def copied_checkpoint_marks(last: int, marks: Mapping[str, int]) -> dict[str, int]:
    """A store's marks of the checkpoints it holds from a source, when it has appended the source's events up to
    position ``last``: those up to there came with the copy of the source's own trail, and those that had come to
    the source with its copies (its ``marks``) came with the copies of those, one copy deeper. Only what a copy
    appended is marked: a store's own backup restored into it marks none of its own checkpoints."""
    return {copied_trail(AUDIT_STREAM): last, **{copied_trail(trail): min(at, last) for trail, at in marks.items()}}


def postgres_tables(schema: str) -> list[Composed]:
    return [
        SQL("CREATE TABLE IF NOT EXISTS {}.archive_audit_copied (trail text NOT NULL, seq bigint NOT NULL, "
            "at double precision NOT NULL, state bytea NOT NULL, link bytea NOT NULL, PRIMARY KEY (trail, seq))"
            ).format(Identifier(schema)),
        SQL("CREATE TABLE IF NOT EXISTS {}.archive_copied_checkpoints (trail text PRIMARY KEY, "
            "last_position bigint NOT NULL)").format(Identifier(schema)),
    ]


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

    def copied_checkpoints(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT trail, last_position FROM archive_copied_checkpoints")
            return dict(c.fetchall())

    def _mark_copied(self, c, marks: dict[str, int]) -> None:
        """In the transaction of the copied page they mark (``EventStore.append_copies``)."""
        c.executemany(_MARK.format(t="archive_copied_checkpoints", p="?", greatest="max"), list(marks.items()))


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

    @functools.cached_property
    def _copied_checkpoints(self) -> Composed:
        return SQL("{}.archive_copied_checkpoints").format(Identifier(self.datastore.schema))

    def copied_checkpoints(self) -> dict[str, int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT trail, last_position FROM {}").format(self._copied_checkpoints))
            return {row["trail"]: row["last_position"] for row in curs.fetchall()}

    def _mark_copied(self, curs, marks: dict[str, int]) -> None:
        """In the transaction of the copied page they mark (``EventStore.append_copies``)."""
        curs.executemany(SQL(_MARK.format(t="{t}", p="%s", greatest="GREATEST")).format(
            t=self._copied_checkpoints), list(marks.items()))
