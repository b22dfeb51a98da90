"""`serve`: the query API over HTTP; `token create|list|revoke`: the API's bearer tokens.

`serve` reads the views and the index that `up` or `project` keep current.
"""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import datetime

from archive.application import StoreLocation
from archive.errors import InvalidQueryError
from archive.times import parse_time, utcnow
from query_api.escaping import one_line
from query_api.roles import TOKEN_ROLES, Role

from ..api_root import open_tokens, serve_api_workers, start_api
from ..bootstrap import open_search_index, open_store, open_views
from ..process import port_number, stopped_by_signals, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve the query API and pages until interrupted (one process, or --workers N behind one port)"
    )
    serve.add_argument("--host", help="address to bind (default: [api] host)")
    serve.add_argument("--port", type=port_number, help="port to listen on, 0 for any free one (default: [api] port)")
    serve.add_argument(
        "--workers", type=whole_number(1, 64), metavar="N",
        help="serve from N processes (gunicorn, threaded workers) instead of one (waitress)",
    )  # fmt: skip
    serve.set_defaults(handler=serve_api)

    token = subparsers.add_parser("token", help="create, list and revoke API tokens")
    actions = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token and print it (it is shown only this once)")
    create.add_argument("--role", required=True, choices=[r.value for r in TOKEN_ROLES])
    create.add_argument(
        "--rooms", nargs="+", default=[], metavar="ROOM",
        help="rooms granted (JIDs; '*@service' or 'glob:PATTERN' for globs): required for analyst; a site token's static list",
    )  # fmt: skip
    create.add_argument("--label", default="", help="a note saying who or what holds the token")
    create.add_argument(
        "--expires", type=expiry, metavar="WHEN",
        help="when the token stops working: a duration from now (30d, 12h, 2w) or a UTC time (2025-01-31)",
    )  # fmt: skip
    create.set_defaults(handler=create_token)
    actions.add_parser("list", help="list tokens (never the tokens themselves)").set_defaults(handler=list_tokens)
    revoke = actions.add_parser("revoke", help="revoke a token by its id (see `token list`)")
    revoke.add_argument("id")
    revoke.set_defaults(handler=revoke_token)



def serve_api(args: argparse.Namespace, config) -> int:
    if args.workers:
        def announce(url: str) -> None:
            print(f"chat-archive serve: listening on {url}", flush=True)
            print(f"chat-archive serve: {args.workers} worker processes (gunicorn)", file=sys.stderr, flush=True)

        return serve_api_workers(config, args.workers, host=args.host, port=args.port, on_ready=announce)
    with stopped_by_signals(threading.Event()) as stop, open_store(config, create=True) as store, open_views(config, store) as views:
        server = start_api(config, store, views, open_search_index(config), stop, host=args.host, port=args.port,
                           freeze_heap=True)
        print(f"chat-archive serve: listening on {server.url}", flush=True)
        while server.is_alive():
            server.join(0.5)
    return 0


def create_token(args: argparse.Namespace, config) -> int:
    location = StoreLocation.parse(config.store.url)
    made = location.kind == "sqlite" and not location.path.exists()
    tokens = open_tokens(config, create=True)
    if made:  # said, so that a token made from the wrong directory is noticed (it opens nothing of the real one)
        print(f"chat-archive token create: made a new archive at {location.path} (a new deployment's first token; "
              "elsewhere, run where its data/ is or give --config FILE)", file=sys.stderr)
    try:
        token, info = tokens.create(Role(args.role), tuple(args.rooms), args.label, expires_at=args.expires)
    finally:
        tokens.close()
    print(token)
    until = f", valid until {info.expires_at}" if info.expires_at else ""
    print(f"token {info.id} ({info.role.value}) created{until}; it is not stored and cannot be shown again", file=sys.stderr)
    return 0


def expiry(text: str) -> datetime:
    """An argparse type: ``30d`` (from now) or an ISO 8601 time; a duration needs no sign."""
    try:
        return parse_time(f"+{text}" if text[:1].isdigit() and not text[-1:].isdigit() else text)
    except (InvalidQueryError, OverflowError):  # OverflowError: past datetime's years (99999999999d)
        # Said of what was typed (not of the "+5x" made of "5x"), and of what an expiry may be (not "-7d").
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: a duration such as 30d, 12h, 2w (from now), or a "
                                         "UTC time such as 2025-01-31") from None


def list_tokens(args: argparse.Namespace, config) -> int:
    tokens = open_tokens(config)
    try:
        rows = tokens.list()
    finally:
        tokens.close()
    now = utcnow()
    print(f"{'id':<12}  {'role':<10}  {'created':<20}  {'state':<28}  {'last used':<20}  rooms / label")
    for t in rows:
        rooms = " ".join(t.rooms) or "-"
        label = f"  ({t.label})" if t.label else ""
        # An operator's label and grants as typed: one line each token, so none can forge another's line.
        print(one_line(
            f"{t.id:<12}  {t.role.value:<10}  {_minute(t.created_at):<20}  {_state(t, now):<28}  "
            f"{_minute(t.last_used_at) if t.last_used_at else 'never':<20}  {rooms}{label}"
        ))
    return 0


def _state(token, now: datetime) -> str:
    if token.revoked_at:
        return f"revoked {_minute(token.revoked_at)}"
    if token.expires_at:
        return f"{'expired' if token.expired(now) else 'expires'} {_minute(token.expires_at)}"
    return "active, no expiry"


def _minute(text: str) -> str:
    return f"{parse_time(text):%Y-%m-%d %H:%M}Z"


def revoke_token(args: argparse.Namespace, config) -> int:
    tokens = open_tokens(config)
    try:
        info = tokens.revoke(args.id)
    finally:
        tokens.close()
    print(f"token {info.id} revoked at {info.revoked_at}")
    return 0
