"""The tables of the store's leases (``archive.lease``), made with the store's own tables when it is opened: a
store made before the notes gets them then, in place (its leases table, made by the first lease before, is kept).

``archive_leases``: one row a lease held (its holder, until when, by the database's clock as seconds since the
epoch). ``archive_lease_notes``: what the last holder of a lease that wrote one left for the next (the listener's
rooms watched and away, its heartbeat): it outlives the lease, as the next holder may start on another host.

An append may be made under a lease (``Fence``): the store checks the lease's row in the append's transaction
(``FENCE_SQL``, ``refusal``), after its writes, and commits only if the holder still has it unexpired.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.sql import SQL, Composed, Identifier

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {leases} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {notes} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, note {blob} NOT NULL)",
)

SQLITE_TABLES = tuple(t.format(leases="archive_leases", notes="archive_lease_notes", blob="BLOB") for t in _TABLES)

# Seconds since the epoch by the database's clock, which sets and judges every holder's expiry whatever host it runs
# on: hosts' clocks differ (a SQLite store is on one host, and SQLite's clock is that host's).
POSTGRES_NOW = "extract(epoch FROM clock_timestamp())::double precision"
SQLITE_NOW = "(julianday('now') - 2440587.5) * 86400.0"

# The lease's row with the database's time, in the append's transaction. PostgreSQL: FOR SHARE keeps another holder
# from taking the row over until the append ends (a takeover waits, then follows it); SQLite: the append holds the
# database's one write lock, which a takeover needs too.
FENCE_SQL = {
    "postgres": f"SELECT holder, expires, {POSTGRES_NOW} AS now FROM {{leases}} WHERE name=%s FOR SHARE",
    "sqlite": f"SELECT holder, expires, {SQLITE_NOW} FROM archive_leases WHERE name=?",
}


@dataclass(frozen=True)
class Fence:
    """An append made under the lease ``name`` held by ``holder`` (``StoreLease.fence``)."""

    name: str
    holder: str


def refusal(fence: Fence, row: tuple[str, float, float] | None) -> str | None:
    """Why an append under ``fence`` may not commit, from the lease's row (holder, expires, the database's now) read
    in its transaction (None: no row); None if it may."""
    if row is None:
        return f"nobody holds the store's {fence.name} lease (it was taken over and released, or never taken)"
    holder, expires, now = row
    if holder != fence.holder:
        return f"the store's {fence.name} lease was taken over by {holder}"
    if expires <= now:
        return f"the store's {fence.name} lease expired {now - expires:.1f} s ago (its holder did not renew it)"
    return None


def postgres_tables(schema: str) -> list[Composed]:
    return [SQL(t.format(leases="{leases}", notes="{notes}", blob="bytea")).format(
        leases=SQL("{}.archive_leases").format(Identifier(schema)),
        notes=SQL("{}.archive_lease_notes").format(Identifier(schema)),
    ) for t in _TABLES]  # fmt: skip


def postgres_fence(schema: str) -> Composed:
    return SQL(FENCE_SQL["postgres"]).format(leases=SQL("{}.archive_leases").format(Identifier(schema)))
