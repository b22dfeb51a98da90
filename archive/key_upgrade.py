"""In-place upgrade of a store made with an earlier side index.

Earlier shapes of ``archive_event_index`` are upgraded to today's (see
``archive.recorders``), which holds the digest of each event's idempotency key
(``archive.idempotency``):

- keyed by the key's text ``idem_key`` (``sid:<room>:<stanza-id>`` or
  ``h:<hash>``, a unique b-tree over random text): the digest is computed from the
  stored key;
- keyed by the slot ``(room, bucket, digest)`` with a second b-tree, the walk
  index (room, whole second, version): the digest is copied;
- (SQLite) keyed by (room, whole second, version) beside the log's own unique
  (room, version) key: the digest is copied, and the key becomes (room, the
  room's highest second so far, version) with the log position;
- (PostgreSQL) any side table: brought to the (room, whole second, version) shape,
  then moved into the log's own rows (``merge_postgres_index``);
- (PostgreSQL) the log keyed by the library's (room, version) primary key with an
  index (room, whole second, version): the room's highest second so far is
  filled in, and both go (``drop_postgres_version_key``; the recorder makes its
  indexes after).

An earlier SQLite log (with eventsourcing's (room, version) key, or its position
an undeclared rowid, which VACUUM renumbers) is rebuilt as today's, every event
at its position.

The tables are rebuilt from the stored rows (no event is decoded), with every
position, version, time and chain link kept, in one transaction: the store is
either upgraded or left as it was. Stores made before hash chains (no ``chain``
column) are upgraded too, their links staying NULL.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg.sql import SQL, Identifier

_OLD_KEY = "idem_key"
# PostgreSQL's last side table, keyed (room, whole second, version): earlier shapes become it, then it is merged.
_POSTGRES_SIDE_TABLE = SQL(
    "CREATE TABLE {} (originator_id text NOT NULL, second bigint NOT NULL, originator_version bigint NOT NULL, "
    "digest bigint NOT NULL, occurred_at double precision NOT NULL, chain bytea, "
    "PRIMARY KEY (originator_id, second, originator_version))"
)


def upgrade_sqlite_index(c: Any, table_ddl: str, log: str) -> bool:
    """Upgrade the SQLite side index if it is an earlier one; True if it was. ``c`` is a cursor in a write
    transaction on a connection with the ``archive_key_digest`` and ``archive_second`` functions; ``table_ddl``
    creates the table named by its ``name`` field. Before ``upgrade_sqlite_log``: it joins on the log's
    earlier (room, version) key."""
    c.execute("PRAGMA table_info(archive_event_index)")
    columns = {row[1] for row in c.fetchall()}
    if "high" in columns:
        return False
    second = "second" if "second" in columns else "archive_second(occurred_at)"
    digest = "archive_key_digest(idem_key)" if _OLD_KEY in columns else "digest"
    chain = "chain" if "chain" in columns else "NULL"
    c.execute(table_ddl.format(name="archive_event_index_upgraded"))
    # Joined on the log's (room, version) key, which the log loses below.
    c.execute(
        "INSERT INTO archive_event_index_upgraded SELECT i.originator_id, MAX(i.second) OVER (PARTITION BY "
        "i.originator_id ORDER BY i.originator_version ROWS UNBOUNDED PRECEDING), i.originator_version, i.second, "
        "e.rowid, i.digest, i.occurred_at, i.chain "
        f"FROM (SELECT originator_id, {second} AS second, originator_version, {digest} AS digest, occurred_at, "
        f"{chain} AS chain FROM archive_event_index) AS i "
        f"JOIN {log} e ON e.originator_id=i.originator_id AND e.originator_version=i.originator_version"
    )
    c.execute("DROP TABLE archive_event_index")  # and the earlier walk index with it
    c.execute("ALTER TABLE archive_event_index_upgraded RENAME TO archive_event_index")
    return True


def upgrade_sqlite_log(c: Any, log_ddl: str, log: str) -> bool:
    """Rebuild the SQLite log as ``log_ddl`` makes it (its position a declared INTEGER PRIMARY KEY named
    ``rowid``) if it is an earlier one; True if it was. ``c`` is a cursor in a write transaction."""
    c.execute(f"PRAGMA table_info({log})")
    if any(row[1] == "rowid" and row[5] == 1 for row in c.fetchall()):
        return False
    c.execute(log_ddl.format(name=f"{log}_upgraded"))
    c.execute(f"INSERT INTO {log}_upgraded (rowid, originator_id, originator_version, topic, state) "
              f"SELECT rowid, originator_id, originator_version, topic, state FROM {log} ORDER BY rowid")
    c.execute(f"DROP TABLE {log}")
    c.execute(f"ALTER TABLE {log}_upgraded RENAME TO {log}")
    return True


def upgrade_postgres_index(curs: Any, schema: str, table_ddl: SQL) -> bool:
    """Upgrade the PostgreSQL side index in ``schema`` if it is an earlier one; True if it was. ``curs`` is in
    a transaction holding the schema's DDL lock; ``table_ddl`` creates the table named by its one field."""
    curs.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name=%s",
        (schema, "archive_event_index"),
    )
    columns = {row["column_name"] for row in curs.fetchall()}
    if "second" in columns:
        return False
    # The digest as ``archive.idempotency.key_digest`` computes it: the first 8 bytes of the key's
    # SHA-256 read as a signed big-endian integer.
    digest = SQL(
        "('x' || encode(substr(sha256(convert_to(idem_key, 'UTF8')), 1, 8), 'hex'))::bit(64)::bigint"
        if _OLD_KEY in columns else "digest"
    )
    chain = SQL("chain" if "chain" in columns else "NULL")
    old = SQL("{}.archive_event_index").format(Identifier(schema))
    new = SQL("{}.archive_event_index_upgraded").format(Identifier(schema))
    curs.execute(table_ddl.format(new))
    curs.execute(
        SQL(
            "INSERT INTO {} SELECT originator_id, floor(occurred_at)::bigint, originator_version, {}, "
            "occurred_at, {} FROM {}"
        ).format(new, digest, chain, old)
    )
    curs.execute(SQL("DROP TABLE {}").format(old))  # and the earlier walk index with it
    curs.execute(SQL("ALTER TABLE {} RENAME TO archive_event_index").format(new))
    curs.execute(
        SQL("ALTER INDEX {}.archive_event_index_upgraded_pkey RENAME TO archive_event_index_pkey").format(
            Identifier(schema)
        )
    )
    return True


def merge_postgres_index(curs: Any, schema: str, log: str) -> bool:
    """Move a PostgreSQL store's side table (of any earlier shape) into its log's side columns, which exist, and
    drop it; True if there was one. ``curs`` is in a transaction holding the schema's DDL lock."""
    index = SQL("{}.archive_event_index").format(Identifier(schema))
    curs.execute("SELECT to_regclass(%s) AS side", (f'"{schema}".archive_event_index',))
    if curs.fetchone()["side"] is None:
        return False
    upgrade_postgres_index(curs, schema, _POSTGRES_SIDE_TABLE)
    curs.execute(
        SQL(
            "UPDATE {} e SET second=i.second, digest=i.digest, occurred_at=i.occurred_at, chain=i.chain FROM {} i "
            "WHERE e.originator_id=i.originator_id AND e.originator_version=i.originator_version"
        ).format(Identifier(schema, log), index)
    )
    moved = curs.rowcount
    curs.execute(SQL("DROP TABLE {}").format(index))
    _rewritten(moved, "moved the side index of", schema, log)
    return True


def _rewritten(rows: int, what: str, schema: str, log: str) -> None:
    # Every row of the log was rewritten: the old versions stay in its pages until a VACUUM frees them
    # (the library's settings keep autovacuum off this table), and a transaction cannot run one.
    logging.getLogger(__name__).warning(
        "%s %s events in the log of schema %s: run VACUUM %s.%s once to reuse the space of the rewritten rows",
        what, rows, schema, schema, log)


def drop_postgres_version_key(curs: Any, schema: str, log: str) -> bool:
    """Drop the library's (room, version) primary key of a PostgreSQL log (and the earlier walk index), having
    filled each row's ``high`` (the room's highest second up to its version), which exists; True if the log had
    the key (a new log too: the library makes it with one). ``curs`` is in a transaction holding the schema's
    DDL lock."""
    curs.execute("SELECT conname FROM pg_constraint WHERE conrelid=%s::regclass AND contype='p'",
                 (f'"{schema}"."{log}"',))
    key = curs.fetchone()
    if key is None:
        return False
    table = Identifier(schema, log)
    # Both indexes go first: every row is rewritten, and each would take an entry for every row's new version.
    curs.execute(SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, Identifier(key["conname"])))
    curs.execute(SQL("DROP INDEX IF EXISTS {}").format(Identifier(schema, "archive_event_walk")))
    curs.execute(
        SQL(
            "UPDATE {} e SET high=h.high FROM (SELECT notification_id, MAX(second) OVER (PARTITION BY originator_id "
            "ORDER BY originator_version ROWS UNBOUNDED PRECEDING) AS high FROM {}) h "
            "WHERE e.notification_id=h.notification_id"
        ).format(table, table)
    )
    if curs.rowcount:
        _rewritten(curs.rowcount, "filled the rooms' highest seconds of", schema, log)
    return True
