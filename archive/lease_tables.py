"""The tables of the store's leases (``archive.lease``), made with the store's own tables when it is opened: a
store made before the notes gets them then, in place (its leases table, made by the first lease before, is kept).

``archive_leases``: one row a lease held (its holder, until when, by the database's clock as seconds since the
epoch). ``archive_lease_notes``: what the last holder of a lease that wrote one left for the next (the listener's
rooms watched and away, its heartbeat): it outlives the lease, as the next holder may start on another host.
"""

from __future__ import annotations

from psycopg.sql import SQL, Composed, Identifier

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {leases} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {notes} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, note {blob} NOT NULL)",
)

SQLITE_TABLES = tuple(t.format(leases="archive_leases", notes="archive_lease_notes", blob="BLOB") for t in _TABLES)


def postgres_tables(schema: str) -> list[Composed]:
    return [SQL(t.format(leases="{leases}", notes="{notes}", blob="bytea")).format(
        leases=SQL("{}.archive_leases").format(Identifier(schema)),
        notes=SQL("{}.archive_lease_notes").format(Identifier(schema)),
    ) for t in _TABLES]  # fmt: skip
