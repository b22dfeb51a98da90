"""The composition root of the HTTP API: ``create_app`` wires the collaborators it is handed.

Every endpoint lives under ``/api/v1`` except ``/healthz`` and ``/metrics``.
The store, views, search index and token store are parameters, so a process
(``chat-archive serve``, ``chat-archive up``) or a test builds them once and
hands them in; what is not handed in is opened from the configuration.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from archive.application import open_event_store
from archive.errors import ChatArchiveError
from archive.health import Health
from archive.store import EventStore
from projections.runner import status as projection_status
from projections.search import IndexLocation, IndexUnusable, SearchIndex
from projections.viewdb_backends import default_views_url
from projections.views import Views

from . import audit, export, holds, openapi, presence, replay, rooms, transcript, web
from .access import Authorizer, PermissionCallback
from .busy import ActiveRequests, turns_for
from .exports import api as exports_api
from .exports.jobs import ExportJobs
from .context import EXTENSION, ApiContext, api, caller, json_response
from .errors import forbidden, install_error_handlers, unauthorized
from .metrics import Family
from .roles import Capability, Role
from .search import bp as search_bp
from .keys import KeyRing, KeyStore
from .sessions import open_ended_sessions
from .signing import Signer
from .tokens import TokenStore, open_database, open_token_store

API_PREFIX = "/api/v1"
# The largest request body anything here takes (a sign-in form, a ticket request): a bigger one
# is a 413 before a byte of it is parsed (the server, waitress, refuses to buffer more).
MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = f"the request body is larger than {MAX_BODY_BYTES} bytes"
PUBLIC_PATHS = (f"{API_PREFIX}/openapi.json", "/static/")


def create_app(
    config: Any,
    *,
    store: EventStore | None = None,
    views: Views | None = None,
    search: SearchIndex | None = None,
    tokens: TokenStore | None = None,
    permission: PermissionCallback | None = None,
    signer: Signer | None = None,
    exports: ExportJobs | None = None,
    stopping: threading.Event | None = None,
    health: Health | None = None,
    processes: int = 1,
) -> Flask:
    """The Flask app over ``store``, ``views`` and ``search``, configured by ``config.api``.

    ``stopping`` is set by the server when it shuts down, which ends open ``follow`` streams.
    ``exports``: the export jobs, which the serving process also sweeps on a schedule.
    ``health``: the long-running parts of this process (listener, projections, indexer in `up`),
    reported by ``/healthz``. ``processes``: how many API processes of this host share its cores.
    """
    settings = config.api
    store = store if store is not None else open_event_store(config.store.url)
    views = views if views is not None else Views(config.projections.url or default_views_url(config.store.url), store)
    if search is None:
        search = SearchIndex(IndexLocation(config.index.path), reload_interval=config.index.commit_interval / 5)
    tokens = tokens if tokens is not None else open_token_store(config.store.url, cache_seconds=settings.token_cache_seconds)
    signer = signer if signer is not None else open_signer(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[EXTENSION] = ApiContext(
        settings=settings,
        store=store,
        authorizer=Authorizer(settings, tokens, permission),
        views=views,
        search=search,
        signer=signer,
        sessions=open_ended_sessions(config.store.url, cache_seconds=settings.token_cache_seconds),
        exports=exports if exports is not None else ExportJobs(settings.export_dir, settings.export_keep_days, settings.max_running_exports),
        stopping=stopping or threading.Event(),
        health=health,
    )
    install_error_handlers(app)
    _install_request_metrics(app)
    for blueprint in (search_bp, rooms.bp, transcript.bp, presence.bp, replay.bp, export.bp, exports_api.bp, audit.bp, holds.bp, openapi.bp):
        app.register_blueprint(blueprint, url_prefix=API_PREFIX)
    app.add_url_rule("/healthz", view_func=healthz)
    app.add_url_rule("/metrics", view_func=metrics)
    web.register(app)  # pages, sign-in, widget, security headers (query_api/web)
    # Every read of archived content is recorded; no request can opt out. Installed last, so that it runs
    # first (Flask runs after-request hooks in reverse): the 503 it answers with when the record cannot be
    # written is the answer the metrics count and the cache and security headers are set on.
    audit.install(app)
    turns = turns_for(settings.active_requests, len(os.sched_getaffinity(0)), processes)
    app.wsgi_app = ActiveRequests(app.wsgi_app, turns)
    return app


def open_signer(config: Any) -> Signer:
    """Keys from ``[api] signing_keys`` if given, else the keys kept in the store."""
    if config.api.signing_keys:
        return Signer(KeyRing.fixed(config.api.signing_keys))
    return Signer(KeyRing(KeyStore(open_database(config.store.url)).load))


def healthz() -> Response:
    """Open to all: whether the archive can be read, and which parts of the process are retrying
    store errors (since when, how many attempts; never the error text), nothing about its content; which views
    are being rebuilt from the log and why (``Views.rebuilding``: answers come from the old ones meanwhile, not
    a failure)."""
    context = api()
    parts = {
        name: {"ok": state.ok, **({} if state.ok else {"failing_since": state.since, "attempts": state.attempts})}
        for name, state in (context.health.snapshot() if context.health else {}).items()
    }
    try:
        context.store.head()
    except ChatArchiveError:
        return json_response({"status": "unavailable", "parts": parts}, 503)
    try:
        rebuilding = context.views.rebuilding()
    except ChatArchiveError:  # the views' database: what the answers say, not whether the archive can be read
        rebuilding = {}
    more = {"rebuilding": rebuilding} if rebuilding else {}
    if not all(part["ok"] for part in parts.values()):
        return json_response({"status": "degraded", "parts": parts, **more}, 503)
    return json_response({"status": "ok", "parts": parts, **more})


def metrics() -> Response:
    context = api()
    if not context.settings.metrics_public:
        who = caller(Capability.ROOMS)
        if who.role is Role.ANONYMOUS:
            raise unauthorized("a bearer token is required")  # anonymous read is not enough
        if not who.scope.everything:
            # Counts per endpoint and the log's size say something about every room.
            raise forbidden("/metrics is for tokens that see every room (compliance), or set [api] metrics_public")
    text = context.metrics.render(_gauges(context))
    return Response(text, mimetype="text/plain; version=0.0.4")


def _gauges(context: ApiContext) -> list[Family]:
    head = context.store.head()
    # Not loaded: a position is all a lag needs; loading a view of an older layout is refused (a start rebuilds it).
    projections = context.views.projections(load=False)
    lags = [({"projection": s.name}, s.lag) for s in projection_status(context.store, projections)]
    try:
        index_lag = max(0, head - context.search.position())
    except IndexUnusable:
        index_lag = head  # being rebuilt: nothing of the log is searchable yet
    return [
        Family("chat_archive_events_appended_total", "Events appended to the log (its head position).", [({}, head)]),
        Family("chat_archive_projection_lag_events", "Log positions a view has not committed yet.", lags),
        Family("chat_archive_index_lag_events", "Log positions the search index has not committed yet.", [({}, index_lag)]),
    ]


def _install_request_metrics(app: Flask) -> None:
    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise RequestEntityTooLarge(TOO_LARGE)

    @app.after_request
    def not_cached(response: Response) -> Response:
        # Answers depend on who asks (and may be theirs only): no cache or proxy may keep them.
        # The API's description and the static files are the same for everyone.
        if "Cache-Control" not in response.headers and not request.path.startswith(PUBLIC_PATHS):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            api().metrics.observe(endpoint, response.status_code, time.perf_counter() - started)
        return response
