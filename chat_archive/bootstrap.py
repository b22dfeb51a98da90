"""Composition root: builds the parts a process needs from a Config."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

from archive.application import StoreLocation, open_event_store
from archive.errors import ChatArchiveError, ConfigError, StoreError, StoreUnavailable
from archive.health import Backoff, Health
from archive.integrity import Checkpoints
from archive.lease import LeaseHeld, LeaseLost, StoreLease, holding
from archive.store import EventStore
from ingest import listener_thread
from ingest.status import status_path
from projections.presence.logic import Gap
from projections.rebuild import Rebuildable, RebuildReport, RebuildStopped, rebuild
from projections.runner import ProjectionStatus, ProjectionThreads, status
from projections.search import IndexerThread, IndexLocation, SearchIndex, SearchIndexer, SearchIndexProjection
from projections.tables import TableProjection
from projections.viewdb_backends import default_views_url
from projections.views import PROJECTION_CLASSES, Views

from .config import Config
from .listener_status import HEARTBEAT_READ, listener_heartbeat, read_at_most_every
from .views_lease import PURGE_LEASE_TTL, purge_lease, views_lease
from .process import Periodic

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_CHECKPOINT_POLL = 2.0  # seconds between looks for a first checkpoint's events (a read of the chains' heads)


def open_store(config: Config, *, create: bool = False) -> EventStore:
    """The store. A SQLite one that is not there is made only where ``create`` (the processes that run a
    deployment: ``up``, ``listen``, ``project``, ``api``; and ``import``), an error for every other command
    (``archive_must_exist``)."""
    if not create:
        archive_must_exist(config)
    return open_event_store(config.store.url, sqlite_synchronous=config.store.sqlite_synchronous)


def archive_must_exist(config: Config) -> None:
    """A SQLite store that is not there is an error for a command run by hand, not made: ``./data`` is relative,
    so from another directory such a command made an empty archive and answered from it (no rooms, 0 hits), or
    wrote to it: a legal hold placed there kept nothing of the real archive from its next purge, and a backup
    of it held nothing."""
    location = StoreLocation.parse(config.store.url)
    if location.kind == "sqlite" and not location.path.exists():
        raise ChatArchiveError(f"no archive at {location.path}: run where its chat-archive.toml is (its data/), or "
                               "give --config FILE or CHAT_ARCHIVE_STORE_URL")


def start_checkpoints(config: Config, store: EventStore, stop: threading.Event, health: Health | None = None) -> Periodic:
    """Record every stream's hash-chain head in the log at start, every ``[store] checkpoint_interval``
    seconds and on ``stop`` (``archive.integrity``); ``.join()`` raises what stopped it. Stop it with
    the writers, before the projections: their last page read on stop takes the last checkpoint in.
    The store unavailable: tried again at the next interval, reported to ``health``. Until one is written
    (a fresh store holds nothing to checkpoint at start), tried every ``FIRST_CHECKPOINT_POLL`` seconds: the
    first events are covered once they are stored, not an interval (an hour) later."""
    checkpoints = Checkpoints(store)
    on_error = health.reporter("checkpoints") if health else None

    def interval() -> float:
        every = config.store.checkpoint_interval
        return every if checkpoints.written else min(every, FIRST_CHECKPOINT_POLL)

    return Periodic("chain-checkpoints", interval, stop, checkpoints.write, on_stop=True, on_error=on_error)


def rebuild_projections(
    config: Config, store: EventStore, names: list[str], *, progress: bool, keep_replaced: bool = True,
    lease: StoreLease | None = None,
) -> RebuildReport:
    """Rebuild the named projections (transcripts, presence, search) from the log, swapped in atomically.
    ``lease``: the purge lease the caller holds (``views_lease.purge_lease``): the rebuild stops once another
    holder took it over, and is swapped in only if it is still the caller's (``LeaseLost`` otherwise): a purge
    that ran meanwhile may have deleted what it read, and recorded the views rebuilt without it."""
    closers, targets = [], []
    try:
        view_names = [n for n in names if n != "search"]
        if view_names:
            views, close = view_projections(config, store, view_names, load=False)
            targets += views
            closers.append(close)
        if "search" in names:
            targets.append(search_projection(config, keep_replaced=keep_replaced))
        if lease is None:
            return rebuild(store, targets, progress=progress)
        try:
            return rebuild(store, targets, progress=progress, stop=lease.lost, before_swap=lease.renew)
        except RebuildStopped as e:  # only the lease's loss stops it
            raise LeaseLost("the store's purge lease was taken over while this rebuild ran (the process paused past "
                            "it?): the rebuild was not swapped in") from e
    finally:
        for close in closers:
            close()


def rebuild_outdated(
    config: Config, store: EventStore, views: Views, name: str, stop: threading.Event | None = None,
    on_error: Callable[[str | None], None] | None = None,
) -> bool:
    """Rebuild the view ``name`` from the log and swap it in if it was built before a rule only a rebuild applies
    (``Views.outdated``); True once it is not outdated (rebuilt here, or by a purge meanwhile), False if ``stop`` was
    set first: the old view stays live and the next start rebuilds it. `up` and `project` call it in a thread of its
    own (``start_projections``): at 10M events a rebuild takes minutes, and the listener must capture meanwhile. The
    API answers from the old view meanwhile, which its follower keeps up with the log where this program can load
    it (else known no further than it has applied, ``Views.known_until``). Under the purge lease, waited for: a purge
    deleting while the rebuild reads would have its deletions swapped back in (and a purge rebuilds the view
    itself). Store errors are waited out (reported to ``on_error``)."""
    stop = stop if stop is not None else threading.Event()
    while (why := views.outdated().get(name)) is not None:
        try:
            with purge_lease(store) as lease:
                log.warning("%s: rebuilding it from the log now", why)
                targets = views.projections([name], load=False)
                if not _rebuild_in_background(store, targets, stop, on_error, before_swap=lease.renew):
                    log.warning("stopped before the %s view was rebuilt: the next start rebuilds it", name)
                    return False
                log.warning("rebuilt from the log: %s", name)
        except (LeaseHeld, LeaseLost) as e:  # lost: not swapped in, built again once no purge runs
            log.warning("the %s view waits for a purge to rebuild it: %s", name, e)
            if stop.wait(PURGE_LEASE_TTL / 6):
                return False
    return True


def followed_view(
    config: Config, store: EventStore, views: Views, name: str, stop: threading.Event | None = None,
    on_error: Callable[[str | None], None] | None = None,
) -> TableProjection | None:
    """The view ``name`` for a runner to follow the log with, rebuilt from the log first if it is outdated
    (``rebuild_outdated``); None if ``stop`` was set first. For a view this program cannot load (a layout an older
    chat-archive made): one it can load is followed while it is rebuilt (``start_projections``)."""
    if not rebuild_outdated(config, store, views, name, stop, on_error):
        return None
    return views.projections([name])[0]


def loaded_view(views: Views, name: str) -> TableProjection | None:
    """The live view ``name`` loaded for a runner to follow, None where this program cannot load it (a layout an
    older chat-archive made, whose load is refused: ``transcripts.view.OLDER_LAYOUT``)."""
    try:
        return views.projections([name])[0]
    except StoreUnavailable:
        raise
    except StoreError as e:
        log.warning("%s: the %s view is not followed until it is rebuilt", e, name)
        return None


# -- projections (transcripts, presence) -------------------------------------


def views_url(config: Config) -> str:
    """``[projections] url``, or beside the event store (see ``projections.viewdb_backends``)."""
    return config.projections.url or default_views_url(config.store.url)


def open_views(config: Config, store: EventStore | None = None) -> Views:
    """The transcript and presence views (``projections.views.Views``): queries for the API. The listener's
    heartbeat is read at most once a second (``HEARTBEAT_READ``): a store round trip, which every page of the API
    reading presence would otherwise make."""
    heartbeat = read_at_most_every(HEARTBEAT_READ, lambda: listener_heartbeat(config, store))
    return Views(views_url(config), store, heartbeat=heartbeat)


def start_projections(config: Config, store: EventStore, stop: threading.Event, health: Health | None = None) -> ProjectionThreads:
    """Run the transcript and presence projections in threads of this process until ``stop`` is set.

    Returns a handle with ``.join()`` (raises if a projection failed) and ``.is_alive()``;
    each projection commits every ``[projections] commit_interval`` seconds and on stop, and
    retries store errors with back-off, reporting them to ``health``. ``LeaseHeld`` if another
    runner keeps these views (``views_lease``).
    """
    held = ExitStack()
    try:
        held.enter_context(holding(views_lease(store, views_url(config)), on_lost=stop.set))
        views = held.enter_context(open_views(config, store))
        views.record_unrecorded_rules()  # as the views' tables tell it before they are followed
        outdated = views.outdated()
        interval = config.projections.commit_interval
        current, later, replacing = [], [], []
        for name in PROJECTION_CLASSES:
            if name not in outdated:
                current.append((views.projections([name])[0], interval))
                continue
            # An outdated view is rebuilt in a thread of its own. Meanwhile the old one is followed, so that the API
            # and the widget's feed are not frozen for the rebuild's minutes; unless it cannot be loaded (an older
            # layout): then its rebuild, which does not read it, comes first.
            on_error = health and health.reporter(f"projection {name} rebuild")
            if (loaded := loaded_view(views, name)) is not None:
                current.append((loaded, interval))
                replacing.append((name, functools.partial(rebuild_outdated, config, store, views, name, stop, on_error)))
            else:
                later.append((name, functools.partial(followed_view, config, store, views, name, stop, on_error),
                              interval))
        return ProjectionThreads(store, current, stop, later=later, replacing=replacing, on_exit=held.close,
                                 health=health)
    except BaseException:
        held.close()
        raise


def projection_status(config: Config, store: EventStore) -> list[ProjectionStatus]:
    """Each view projection's position and lag behind the log (``projections.runner.ProjectionStatus``), and why it
    is being rebuilt (``Views.rebuilding``)."""
    with open_views(config, store) as views:
        rebuilding = views.rebuilding()
        # Not loaded: a position is all it reads; loading a view of an older layout is refused (a start rebuilds it).
        statuses = status(store, views.projections(load=False))
    for projection in statuses:
        projection.rebuilding = rebuilding.get(projection.name)
    return statuses


def view_projections(
    config: Config, store: EventStore, names: list[str], *, load: bool = True
) -> tuple[list[TableProjection], Callable]:
    """The view projections by name (transcripts, presence) and a function closing them;
    ``load=False`` for the targets of a rebuild (see ``Views.projections``)."""
    views = open_views(config, store)
    return views.projections(names, load=load), views.close


# -- search index ---------------------------------------------------------------


def search_projection(
    config: Config, *, stop: threading.Event | None = None, keep_replaced: bool = True
) -> SearchIndexProjection:
    """The index projection over ``[index] path`` (for ``chat-archive rebuild search``: it
    implements ``projections.rebuild.Rebuildable``; it takes the writer lock only when it writes).
    ``stop``: a rebuild waiting for another to end stops waiting; ``keep_replaced=False``: a rebuild drops
    the generation it replaces (after a purge)."""
    return SearchIndexProjection(IndexLocation(config.index.path), heap_mb=config.index.writer_heap_mb, stop=stop,
                                 keep_replaced=keep_replaced)


def open_search_index(config: Config) -> SearchIndex:
    """The search reader for the API, pages and CLI: ``.search(text, Scope(...), ...)``,
    ``.position()``, ``.rooms()`` (see ``projections.search``). Sees new commits within
    a fifth of ``[index] commit_interval``."""
    return SearchIndex(IndexLocation(config.index.path), reload_interval=config.index.commit_interval / 5)


def start_search_indexer(
    config: Config, store: EventStore, stop: threading.Event, health: Health | None = None, *, rebuild_unusable: bool = False
) -> IndexerThread:
    """Keep the index up to date in a thread of this process until ``stop`` is set.

    A message appended is searchable within about ``[index] commit_interval``. Returns a
    handle with ``.join()`` (raises what stopped the indexer; a failure also sets ``stop``)
    and ``.is_alive()``. Only one indexer may run per index directory (across processes):
    a second one raises ``StoreError`` here, not later in its thread. Store errors are retried
    with back-off and reported to ``health``. ``rebuild_unusable`` (`up`): an index this program
    cannot use (an earlier schema) is rebuilt from the log in the thread first, while searches answer
    that the index is unavailable; otherwise its ``StoreError`` is raised here.
    """
    projection = search_projection(config, stop=stop)
    on_error = health.reporter("search indexer") if health else None

    def indexer() -> SearchIndexer:
        return SearchIndexer(store, projection, commit_interval=config.index.commit_interval, on_error=on_error)

    if projection.unusable is None or not rebuild_unusable:
        projection.claim_writer()
        ready = indexer()
        return IndexerThread(lambda: ready, stop)
    log.warning("%s. Rebuilding it from the log now, in the background: searches answer 503 until it is done",
                projection.unusable)

    def rebuilt() -> SearchIndexer | None:
        if not _rebuild_in_background(store, [projection], stop, on_error):
            return None
        projection.claim_writer()
        log.warning("search index rebuilt: searches are answered again")
        return indexer()

    return IndexerThread(rebuilt, stop)


def _rebuild_in_background(
    store: EventStore, targets: list[Rebuildable], stop: threading.Event, on_error: Callable[[str | None], None] | None,
    *, before_swap: Callable[[], None] | None = None,
) -> bool:
    """Rebuild ``targets``, store errors waited out as a runner waits them out (each attempt starts again:
    a rebuild is not resumable); False if ``stop`` was set first. ``before_swap``: as ``rebuild``'s."""
    backoff = Backoff(first=0.2, most=10.0)
    while True:
        try:
            rebuild(store, targets, stop=stop, before_swap=before_swap)
        except RebuildStopped:
            return False
        except StoreUnavailable as e:
            log.warning("%s rebuild: %s (starting again)", "+".join(t.name for t in targets), e)
            if on_error:
                on_error(f"{'+'.join(t.name for t in targets)} rebuild: {e}")
            if stop.wait(backoff.next()):
                return False
            continue
        if on_error:
            on_error(None)
        return True


def search_status(config: Config, store: EventStore) -> ProjectionStatus:
    """The index's committed position and lag behind the log, for ``chat-archive status``; an index that
    cannot be used (an earlier schema, which `up` rebuilds) with the reason."""
    head = store.head()
    location = IndexLocation(config.index.path)
    try:
        position = SearchIndex(location).position()
    except StoreError as e:
        rebuilding = location.rebuild_running()
        return ProjectionStatus(name="search", position=0, head=head, lag=head,
                                problem="being rebuilt (by up, or rebuild search)" if rebuilding else str(e))
    return ProjectionStatus(name="search", position=position, head=head, lag=max(0, head - position))


# -- XMPP listener ----------------------------------------------------------------


def start_listener(config: Config, store: EventStore, stop: threading.Event, *, xmpp=None, health: Health | None = None):
    """Run the XMPP listener in a thread of this process until ``stop`` is set (as `listen` and `up` do).

    ``xmpp``: settings to use instead of ``config.xmpp`` (e.g. those ``chat_archive.demo.start_demo``
    returns). Returns ``ingest.listener_thread.ListenerHandle``: ``.join()`` (raises if the listener
    crashed), ``.is_alive()``, ``.joined_rooms()``. On stop it writes what it holds, then ends.
    Raises ``StoreError`` if another listener archives into the store (its lease). ``health``:
    the process's parts, written into the listener's status file for `status`.
    """
    settings = xmpp if xmpp is not None else config.xmpp
    if not settings.jid:
        raise ConfigError("[xmpp] jid is empty: configure a server (README: Pointing at a real server) or use --demo")
    return listener_thread.start_listener(settings, store, stop, status_file=status_path(settings), health=health)


def incomplete_spans(config: Config, store: EventStore) -> list[Gap]:
    """Archive gaps of every room in which messages may be missing (``chat-archive verify`` checks them)."""
    with open_views(config, store) as views:
        return views.presence.incomplete_gaps()
