"""Stores as earlier code left them, for the in-place upgrade tests: before slotted idempotency keys
(issue 15), with the side index keyed by the slot (issue 15's first shape), (SQLite) keyed by
(room, second, version) beside the log's own (room, version) key (issue 15's second shape), (SQLite)
the log's position an undeclared rowid, (PostgreSQL) the log keyed by (room, version) with its side columns'
walk index (room, second, version), and (PostgreSQL) with a side table keyed (room, second, version)
beside that log (before its columns moved into the log's rows; every earlier PostgreSQL shape is made from it).

The side index's DDL below is the earlier code's, captured verbatim in spirit: ``idem_key`` text primary
key, then the room, version, time and (from issue 14 on) the chain link; the walk index as it was.
A store is written by today's code, then its side index is put back into that shape, row by row, from
the events themselves (their keys computed by ``idempotency_key``, as the earlier code stored them).
"""

from __future__ import annotations

import sqlite3

import psycopg

from archive.application import StoreLocation
from archive.codec import from_msgpack, idempotency_key

# The earlier side index is made under a temporary name, filled, then put in place of today's.
OLD_SQLITE = [
    "CREATE TABLE archive_event_index_old (idem_key TEXT PRIMARY KEY, originator_id TEXT NOT NULL, "
    "originator_version INTEGER NOT NULL, occurred_at REAL NOT NULL{chain}) WITHOUT ROWID",
]
# The SQLite log as the library makes it, keyed (room, version) beside its rowid (the log position).
OLD_SQLITE_LOG = [
    "CREATE TABLE stored_events_old (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
    "PRIMARY KEY (originator_id, originator_version))",
    "INSERT INTO stored_events_old (rowid, originator_id, originator_version, topic, state) "
    "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events",
    "DROP TABLE stored_events",
    "ALTER TABLE stored_events_old RENAME TO stored_events",
]
OLD_SQLITE_IN_PLACE = [
    "DROP TABLE archive_event_index",
    "ALTER TABLE archive_event_index_old RENAME TO archive_event_index",
    "CREATE INDEX archive_event_index_walk ON archive_event_index "
    "(originator_id, CAST(occurred_at AS INTEGER), originator_version)",
    *OLD_SQLITE_LOG,
]
# Issue 15's second SQLite side index: keyed (room, whole second, version), beside the log's own key.
ORDERED_SQLITE = [
    "CREATE TABLE archive_event_index_old (originator_id TEXT NOT NULL, second INTEGER NOT NULL, "
    "originator_version INTEGER NOT NULL, digest INTEGER NOT NULL, occurred_at REAL NOT NULL, chain BLOB, "
    "PRIMARY KEY (originator_id, second, originator_version)) WITHOUT ROWID",
    "INSERT INTO archive_event_index_old SELECT originator_id, second, originator_version, digest, occurred_at, "
    "chain FROM archive_event_index",
    "DROP TABLE archive_event_index",
    "ALTER TABLE archive_event_index_old RENAME TO archive_event_index",
    *OLD_SQLITE_LOG,
]
OLD_POSTGRES = [
    "CREATE TABLE archive_event_index_old (idem_key text PRIMARY KEY, originator_id text NOT NULL, "
    "originator_version bigint NOT NULL, occurred_at double precision NOT NULL{chain})",
]
OLD_POSTGRES_IN_PLACE = [
    "DROP TABLE archive_event_index",
    "ALTER TABLE archive_event_index_old RENAME TO archive_event_index",
    "ALTER INDEX archive_event_index_old_pkey RENAME TO archive_event_index_pkey",
    "CREATE INDEX archive_event_index_walk ON archive_event_index "
    "(originator_id, floor(occurred_at), originator_version)",
]


# PostgreSQL's log as issue 15 left it before layout J: the library's (room, version) primary key, and the
# side columns' walk index (room, whole second, version); no room's highest second so far.
VERSION_KEYED_POSTGRES = [
    "ALTER TABLE archive_store_events DROP COLUMN high, "  # and the order and late-event indexes on it
    "ADD PRIMARY KEY (originator_id, originator_version)",
    "CREATE INDEX archive_event_walk ON archive_store_events (originator_id, second, originator_version)",
]
# PostgreSQL's side table keyed (room, whole second, version), filled from the log's side columns, which go.
SPLIT_POSTGRES = [
    *VERSION_KEYED_POSTGRES,
    "CREATE TABLE archive_event_index (originator_id text NOT NULL, second bigint NOT NULL, "
    "originator_version bigint NOT NULL, digest bigint NOT NULL, occurred_at double precision NOT NULL, "
    "chain bytea, PRIMARY KEY (originator_id, second, originator_version))",
    "INSERT INTO archive_event_index SELECT originator_id, second, originator_version, digest, occurred_at, chain "
    "FROM archive_store_events",
    "ALTER TABLE archive_store_events DROP COLUMN second, DROP COLUMN digest, DROP COLUMN occurred_at, "
    "DROP COLUMN chain",  # and the walk index on them
]


# Issue 15's first slotted side index: keyed by the slot (room, hour bucket, digest), the walk index beside it.
SLOTS_SQLITE = (
    "CREATE TABLE archive_event_index_old (originator_id TEXT NOT NULL, bucket INTEGER NOT NULL, "
    "digest INTEGER NOT NULL, originator_version INTEGER NOT NULL, occurred_at REAL NOT NULL, chain BLOB, "
    "PRIMARY KEY (originator_id, bucket, digest)) WITHOUT ROWID"
)
SLOTS_POSTGRES = (
    "CREATE TABLE archive_event_index_old (originator_id text NOT NULL, bucket bigint NOT NULL, "
    "digest bigint NOT NULL, originator_version bigint NOT NULL, occurred_at double precision NOT NULL, "
    "chain bytea, PRIMARY KEY (originator_id, bucket, digest))"
)
SLOTS_FILLED = (
    "INSERT INTO archive_event_index_old SELECT originator_id, second / 3600, digest, originator_version, "
    "occurred_at, chain FROM archive_event_index"
)


# A store made by an earlier chat-archive has no record of its set-up (``archive.schema_ddl``): opened, it is set up.
FORGET_SET_UP = "DROP TABLE IF EXISTS archive_schema"


def split_postgres(conn) -> int:
    """Put a PostgreSQL store's side columns back into a side table beside its log; returns the rows written."""
    conn.execute(FORGET_SET_UP)
    return [conn.execute(statement).rowcount for statement in SPLIT_POSTGRES][len(VERSION_KEYED_POSTGRES) + 1]


def key_postgres_log_by_version(conn) -> None:
    """Put a PostgreSQL store's log back into its shape before layout J (keyed by (room, version))."""
    conn.execute(FORGET_SET_UP)
    for statement in VERSION_KEYED_POSTGRES:
        conn.execute(statement)


def downgrade_to_ordered(path) -> None:
    """Put a SQLite store's side index and log back into issue 15's second shape."""
    with sqlite3.connect(path) as conn:
        for statement in ORDERED_SQLITE:
            conn.execute(statement)


# Issue 15's third SQLite log: no (room, version) key, its position an undeclared rowid (VACUUM renumbers it).
UNDECLARED_ROWID_LOG = [
    "CREATE TABLE stored_events_old (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB)",
    *OLD_SQLITE_LOG[1:],
]


def downgrade_log_to_undeclared_rowid(path) -> None:
    """Put a SQLite store's log back into the shape whose position is an undeclared rowid."""
    with sqlite3.connect(path) as conn:
        for statement in UNDECLARED_ROWID_LOG:
            conn.execute(statement)


def downgrade_to_slots(store_url: str) -> int:
    """Put a store's side index back into its slot-keyed shape; returns the rows written."""
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            conn.execute(SLOTS_SQLITE)
            rows = conn.execute(SLOTS_FILLED).rowcount
            for statement in OLD_SQLITE_IN_PLACE:
                conn.execute(statement)
            return rows
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname,
                         options=f"-c search_path={location.schema}") as conn:
        split_postgres(conn)
        conn.execute(SLOTS_POSTGRES)
        rows = conn.execute(SLOTS_FILLED).rowcount
        for statement in OLD_POSTGRES_IN_PLACE:
            conn.execute(statement)
        return rows


def downgrade(store_url: str, *, chained: bool = True) -> int:
    """Put a store's side index back into the earlier shape (without chain links and heads table
    when not ``chained``: a store made before issue 14); returns the rows written."""
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            return _downgrade(conn, OLD_SQLITE, OLD_SQLITE_IN_PLACE, "stored_events", "BLOB", "?", chained)
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname,
                         options=f"-c search_path={location.schema}") as conn:
        split_postgres(conn)
        return _downgrade(conn, OLD_POSTGRES, OLD_POSTGRES_IN_PLACE, "archive_store_events", "bytea", "%s", chained)


def _downgrade(conn, ddl: list[str], in_place: list[str], events: str, blob: str, mark: str, chained: bool) -> int:
    links = {(r, v): link for r, v, link in conn.execute(
        "SELECT originator_id, originator_version, chain FROM archive_event_index").fetchall()}
    for statement in ddl:
        conn.execute(statement.format(chain=f", chain {blob}" if chained else ""))
    rows = []
    for room, version, state in conn.execute(f"SELECT originator_id, originator_version, state FROM {events}").fetchall():
        event = from_msgpack(bytes(state))
        row = (idempotency_key(event), room, version, event.occurred_at.timestamp())
        rows.append(row + ((links[room, version],) if chained else ()))
    marks = ",".join([mark] * (5 if chained else 4))
    conn.cursor().executemany(f"INSERT INTO archive_event_index_old VALUES ({marks})", rows)
    for statement in in_place + ([] if chained else ["DROP TABLE archive_chain_heads"]):
        conn.execute(statement)
    return len(rows)
