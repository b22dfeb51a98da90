"""The query API's composition: its tokens and signing keys, the Flask app over a process's parts, and serving it
(in a thread of `up`, or in `api`'s worker processes)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

from archive.health import Health
from archive.store import EventStore
from query_api import create_app
from query_api.exports.jobs import SWEEP_EVERY, ExportJobs
from query_api.keys import KeyStore
from query_api.server import ApiServer, start_server
from query_api.sessions import EndedSessions
from query_api.tokens import TokenStore, open_database, open_token_store
from query_api.workers import serve_workers

from .bootstrap import archive_must_exist, open_search_index, open_store, open_views
from .config import Config
from .process import Periodic


def open_tokens(config: Config, *, create: bool = False) -> TokenStore:
    """The API token store, inside the event store's database, which must be there (``archive_must_exist``): a
    token made in an archive made for it, from another directory, opens nothing of the real one. ``create``: the
    first token of a new deployment is made before its first `up` (docs/DEPLOY.md), so `token create` makes it."""
    if not create:
        archive_must_exist(config)
    return open_token_store(config.store.url, cache_seconds=config.api.token_cache_seconds)


def open_key_store(config: Config) -> KeyStore:
    """The server's signing keys, inside the event store's database (`chat-archive keys`), which must be there."""
    archive_must_exist(config)
    return KeyStore(open_database(config.store.url))


def build_api(
    config: Config, store: EventStore, views=None, search=None, stop=None, demo: dict | None = None, health=None,
    processes: int = 1,
):
    """The Flask app over the parts this process already holds; views and index opened if not given.

    ``demo``: what the pages tell a newcomer about `up --demo` (token file, guest account).
    ``processes``: the API processes of this host (`serve --workers`), sharing its cores.
    """
    views = views if views is not None else open_views(config, store)
    search = search if search is not None else open_search_index(config)
    exports = ExportJobs(config.api.export_dir, config.api.export_keep_days, config.api.max_running_exports)
    app = create_app(
        config, store=store, views=views, search=search, tokens=open_tokens(config), exports=exports, stopping=stop,
        health=health, processes=processes,
    )
    app.config["DEMO"] = demo
    if stop is not None:  # a serving process: expired exports are deleted on time, asked about or not
        Periodic("export-sweep", SWEEP_EVERY, stop, exports.scheduled_sweep)
    return app


def serve_api_workers(config: Config, workers: int, *, host=None, port=None, on_ready: Callable[[str], None]) -> int:
    """Serve the API from ``workers`` processes behind one port (gunicorn) until SIGTERM/SIGINT.

    Each worker opens its own store, views and index after the fork. Their tables, the
    ended sessions' table and the signing keys are made here first, so that workers
    starting at once do not race to create them.
    """
    with open_store(config, create=True) as store:
        open_views(config, store).close()
    database = open_database(config.store.url)
    try:
        EndedSessions(database)
        if not config.api.signing_keys:
            KeyStore(database).keys()
    finally:
        database.close()

    def make_app(stop: threading.Event):
        app = build_api(config, open_store(config, create=True), stop=stop, processes=workers)
        freeze_startup_heap()
        return app

    return serve_workers(
        make_app,
        host if host is not None else config.api.host,
        port if port is not None else config.api.port,
        workers=workers,
        threads=config.api.threads,
        on_ready=on_ready,
        client_seconds=config.api.stalled_client_seconds,
        connection_limit=config.api.connection_limit,
    )


def freeze_startup_heap() -> None:
    """Move every object this process holds so far out of the garbage collector's sight (``gc.freeze``), once
    a serving process has built its app and before it answers: modules, settings and the app's parts live as
    long as the process, and a full collection visits every object it sees. Measured under a search load at
    1M (a `serve` worker, load 5-9 on 2 cores): a full collection every 10-20 s, each pausing every request
    100-240 ms wall (about 70 ms CPU); frozen, about a millisecond. Garbage is collected first; what of the
    startup heap later becomes cyclic garbage is kept for good (a few objects, measured).

    Not in `up`: its projections, indexer, listener and purges are running by the time its API starts, and
    their in-flight state would be frozen with the rest."""
    gc.collect()
    gc.freeze()


def start_api(
    config: Config,
    store: EventStore,
    views=None,
    search=None,
    stop: threading.Event | None = None,
    *,
    host=None,
    port=None,
    demo: dict | None = None,
    health: Health | None = None,
    freeze_heap: bool = False,
) -> ApiServer:
    """Serve the API in a thread of this process (as `chat-archive up` does) until ``stop`` is set.

    Returns the server handle: ``.url``, ``.stop()``, ``.join()``. ``stop`` is a
    ``threading.Event`` shared with the caller (one is made if not given); setting it
    ends open follow streams and the server. ``health``: the parts of this process, for ``/healthz``;
    ``freeze_heap``: ``freeze_startup_heap`` once the app is built, before it answers (a process that only serves).
    """
    stop = stop if stop is not None else threading.Event()
    app = build_api(config, store, views, search, stop, demo, health)
    if freeze_heap:
        freeze_startup_heap()
    return start_server(
        app,
        host if host is not None else config.api.host,
        port if port is not None else config.api.port,
        threads=config.api.threads,
        stop=stop,
        stalled_seconds=config.api.stalled_client_seconds,
        connection_limit=config.api.connection_limit,
    )
