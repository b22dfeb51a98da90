"""In-place upgrade of a store whose side index is keyed by the idempotency key's text.

Stores made before ``archive.idempotency`` keyed ``archive_event_index`` by
``idem_key`` (``sid:<room>:<stanza-id>`` or ``h:<hash>``), a unique b-tree over
random text. Opening such a store rebuilds the table keyed by slot
``(room, bucket, digest)``, computed from the stored key and time (no event is
decoded), with every version, time and chain link kept, in one transaction:
the store is either upgraded or left as it was. Stores made before hash chains
(no ``chain`` column) are upgraded too, their links staying NULL.
"""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL, Composable, Identifier

from .idempotency import BUCKET

_OLD_KEY = "idem_key"


def upgrade_sqlite_index(c: Any, table_ddl: str, walk_index_ddl: str) -> bool:
    """Upgrade the SQLite side index if it is the old one; True if it was. ``c`` is a cursor in a write
    transaction on a connection with the ``archive_key_digest`` and ``archive_bucket`` functions."""
    c.execute("PRAGMA table_info(archive_event_index)")
    columns = {row[1] for row in c.fetchall()}
    if _OLD_KEY not in columns:
        return False
    chain = "chain" if "chain" in columns else "NULL"
    c.execute(table_ddl.format(name="archive_event_index_upgraded"))
    c.execute(
        "INSERT INTO archive_event_index_upgraded SELECT originator_id, archive_bucket(occurred_at), "
        f"archive_key_digest(idem_key), originator_version, occurred_at, {chain} FROM archive_event_index"
    )
    c.execute("DROP TABLE archive_event_index")
    c.execute("ALTER TABLE archive_event_index_upgraded RENAME TO archive_event_index")
    c.execute(walk_index_ddl)
    return True


def upgrade_postgres_index(curs: Any, schema: str, table_ddl: SQL, walk_index_ddl: Composable) -> bool:
    """Upgrade the PostgreSQL side index in ``schema`` if it is the old one; True if it was. ``curs`` is in
    a transaction holding the schema's DDL lock; ``table_ddl`` creates the table named by its one field."""
    curs.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name=%s",
        (schema, "archive_event_index"),
    )
    columns = {row["column_name"] for row in curs.fetchall()}
    if _OLD_KEY not in columns:
        return False
    chain = SQL("chain" if "chain" in columns else "NULL")
    old = SQL("{}.archive_event_index").format(Identifier(schema))
    new = SQL("{}.archive_event_index_upgraded").format(Identifier(schema))
    curs.execute(table_ddl.format(new))
    # The digest as ``archive.idempotency.key_digest`` computes it: the first 8 bytes of the key's
    # SHA-256 read as a signed big-endian integer.
    curs.execute(
        SQL(
            "INSERT INTO {} SELECT originator_id, floor(occurred_at / %s)::bigint, "
            "('x' || encode(substr(sha256(convert_to(idem_key, 'UTF8')), 1, 8), 'hex'))::bit(64)::bigint, "
            "originator_version, occurred_at, {} FROM {}"
        ).format(new, chain, old),
        (BUCKET,),
    )
    curs.execute(SQL("DROP TABLE {}").format(old))
    curs.execute(SQL("ALTER TABLE {} RENAME TO archive_event_index").format(new))
    curs.execute(
        SQL("ALTER INDEX {}.archive_event_index_upgraded_pkey RENAME TO archive_event_index_pkey").format(
            Identifier(schema)
        )
    )
    curs.execute(walk_index_ddl)
    return True
