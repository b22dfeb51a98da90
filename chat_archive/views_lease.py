"""The leases around the views: one projection runner per views database, named by what the database is; one
purge, or rebuild of the views, at a time on a store."""

from __future__ import annotations

from archive.application import StoreLocation
from archive.errors import StoreError
from archive.lease import StoreLease, holding
from archive.store import EventStore

PURGE_LEASE_TTL = 60.0  # seconds a purge's lease lasts unless renewed (a crashed purge's is taken over then)


def purge_lease(store: EventStore):
    """Held by a purge, by a rebuild of the views from the command line and by a runner's rebuild of an outdated view
    (``bootstrap.rebuild_outdated``): a rebuild whose read of the log
    overlapped a purge's deletion would swap in views showing what it deleted, after it recorded them rebuilt.
    (The search index needs no lease: a copy built meanwhile notes the purge and is rebuilt, see
    ``projections.search.purged``.) ``LeaseHeld`` naming the holder. The lease is yielded: a holder that paused
    past it (another purge ran meanwhile) learns so at its next renewal (``lease.lost`` set, which stops its
    rebuild) or at the checks before its swap and its record (``lease.renew``)."""
    return holding(StoreLease(store, "purge", ttl=PURGE_LEASE_TTL))


def views_lease(store: EventStore, url: str) -> StoreLease:
    """One projection runner per views (`up`, `project`, `project --once`): two would write the same lines,
    and whichever committed them second would fail on them and stop. A rebuild needs none: it writes a new
    generation beside the live one. ``url``: the views' database."""
    views = StoreLocation.parse(url)
    shown = views.path if views.kind == "sqlite" else f"{views.host}:{views.port}/{views.dbname}, schema {views.schema}"
    return StoreLease(store, f"views {_views_identity(views)}", holder_is=f"projection runner of the views in {shown}")


def _views_identity(views: StoreLocation) -> str:
    """The views' database as the same whatever names it: a SQLite file by its device and inode (a relative path,
    a link, a bind mount), a PostgreSQL database by its name and schema, not by the host and port it is reached
    at (an alias, a pooler). Two views that only share a database name on different servers are taken for one:
    a runner refused, which says why, rather than two runners on one."""
    if views.kind == "postgresql":
        return f"postgresql {views.dbname}?schema={views.schema}"
    try:
        views.path.parent.mkdir(parents=True, exist_ok=True)
        views.path.touch()  # an empty file is an empty SQLite database: the views create their tables in it
        found = views.path.stat()
    except OSError as e:
        raise StoreError(f"cannot open the views database {views.path}: {e}") from e
    return f"sqlite {found.st_dev}:{found.st_ino}"
