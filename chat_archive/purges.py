"""The purge as `purge` and `up` run it: the deletion (``archive.retention``), then the views' and the search
index's rebuild, the record that they were rebuilt, and the erasure of SQLite's write-ahead copies."""

from __future__ import annotations

import logging
import threading

from archive.application import StoreLocation
from archive.errors import ChatArchiveError
from archive.events import EventsPurged
from archive.lease import LeaseHeld, StoreLease
from archive.retention import finish_purges, pending_purge, purge, record_purge_applied
from archive.store import EventStore
from projections.message_groups import message_groups
from projections.rebuild import RebuildReport
from projections.search import IndexLocation
from projections.search.storage import generation_id

from .bootstrap import open_views, rebuild_projections, views_url
from .config import Config
from .process import Periodic
from .views_lease import purge_lease

log = logging.getLogger(__name__)
ALL_PROJECTIONS = ["transcripts", "presence", "search"]
LEASE_RETRY = 5.0  # seconds between a scheduled purge's tries while the purge lease is held (a read of the lease)


def purge_expired(config: Config, store: EventStore, *, by: str, dry_run: bool = False) -> EventsPurged | None:
    """Delete the expired events no legal hold covers (``archive.retention``; messages expire and are held whole,
    by the message model's rule, ``projections.message_groups``), then rebuild the views and
    the search index from what remains, so that nothing purged can be read or found anywhere: after this
    purge's deletions, or an earlier purge's whose rebuild did not finish (``pending_purge``). One purge at a
    time on a store (its ``purge`` lease; ``LeaseHeld`` naming the other): a rebuild that read the log while
    another purge was deleting would record that purge applied without having seen its deletions. A purge that
    paused past its lease (another ran meanwhile) neither swaps its rebuild in nor records it (``LeaseLost``)."""
    if dry_run:
        return purge(store, config.retention, together=message_groups, by=by, dry_run=True)
    with purge_lease(store) as lease:
        finish_purges(store)  # first: what an interrupted purge named, so that this one names none of it again
        record = purge(store, config.retention, together=message_groups, by=by)
        unapplied = pending_purge(store)
        if unapplied is not None:
            apply_purge(config, store, unapplied, by=by, progress=False, lease=lease)
        # Last, as a reader holding a log fails it (the views must be rebuilt by then), and on every purge, also
        # one that found nothing to delete: it empties what an earlier one's failed erase left.
        erase_purged_copies(config, store)
    return record


def apply_purge(
    config: Config, store: EventStore, unapplied: int, *, by: str, progress: bool, lease: StoreLease
) -> RebuildReport:
    """Rebuild the views and the search index without what the purge record at log position ``unapplied`` (and
    every one before it) deleted, and record it applied. The caller holds the purge ``lease`` and finished the
    records' deletions (``finish_purges``: a purge may have stopped among them); ``LeaseLost`` if another took
    it over meanwhile (checked before the swap and before the record: ``rebuild_projections``)."""
    # The replaced index generation is dropped at the swap: it holds what was purged.
    report = rebuild_projections(config, store, ALL_PROJECTIONS, progress=progress, keep_replaced=False, lease=lease)
    lease.renew()  # still ours: the record says no other purge's deletions are left to rebuild without
    rebuilt = IndexLocation(config.index.path).current()
    record_purge_applied(store, unapplied, by=by, search_index=generation_id(rebuilt) if rebuilt else "")
    return report


def erase_purged_copies(config: Config, store: EventStore) -> None:
    """Leave no older copy of what a purge deleted in the store's and the views' files (SQLite's write-ahead
    logs): both tried; the first failure raised (StoreUnavailable while a reader holds a log)."""
    failures = []
    for erase in (store.erase_deleted_copies, lambda: _erase_views_copies(config, store)):
        try:
            erase()
        except ChatArchiveError as e:
            failures.append(e)
    if failures:
        raise failures[0]


def _erase_views_copies(config: Config, store: EventStore) -> None:
    location = StoreLocation.parse(views_url(config))
    if location.kind != "sqlite" or not location.path.exists():
        return  # PostgreSQL has no secure delete (README, "Purge"); no views file, no copies
    views = open_views(config, store)
    try:
        views.recorder.erase_dropped_copies()
    finally:
        views.close()


def start_purges(config: Config, store: EventStore, stop: threading.Event) -> Periodic | None:
    """`up`'s scheduled purge, at start and every ``[retention] purge_interval`` seconds; with no retention period
    set, only while an earlier purge's rebuild is owed (a turn skipped for the store unavailable is taken at the
    next interval, as with a period set); None when neither. A turn the purge lease kept from running (another
    purge, or a rebuild of the views: `up`'s own of an outdated view, at start) is tried again every
    ``LEASE_RETRY`` seconds until it runs, not an interval (a day) later."""
    retains = bool(config.retention.default_days or any(config.retention.rooms.values()))
    if not retains and pending_purge(store) is None:
        return None
    held = threading.Event()  # the last turn found the lease held

    def scheduled() -> None:
        held.clear()
        if not retains and pending_purge(store) is None:
            return  # the owed rebuild is done: nothing expires without a period
        try:
            purge_expired(config, store, by="scheduled purge (up)")
        except LeaseHeld as e:
            held.set()
            log.warning("scheduled purge waits: %s (tried again in %.0f s)", e, LEASE_RETRY)

    def interval() -> float:
        every = config.retention.purge_interval
        return min(every, LEASE_RETRY) if held.is_set() else every

    return Periodic("retention-purge", interval, stop, scheduled)
