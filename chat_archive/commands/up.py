"""`up`: the main job in one process: listener, projections, search indexer and API."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

import msgspec

from query_api.roles import Role

from ..bootstrap import (
    open_search_index,
    open_store,
    open_tokens,
    open_views,
    start_api,
    start_listener,
    start_projections,
    start_search_indexer,
)
from .api import _port
from .listen import configure_logging, stop_on_signals

log = logging.getLogger("chat_archive.up")
DEMO_COMMIT_INTERVAL = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser(
        "up", help="run everything in one process: listener, projections, search index and API (the main job)"
    )
    up.add_argument(
        "--demo", action="store_true",
        help="start a local Prosody with simulated users talking, archive it, and print a sign-in token",
    )
    up.add_argument("--host", help="API bind address (default: [api] host)")
    up.add_argument("--port", type=_port, help="API port (default: [api] port)")
    up.set_defaults(handler=run_everything)


def run_everything(args: argparse.Namespace, config) -> int:
    configure_logging()
    stop = threading.Event()
    stop_on_signals(stop)
    demo = None
    xmpp = config.xmpp
    if args.demo:
        from ..demo import start_demo

        xmpp, demo = start_demo(config)
        # A newcomer should see transcripts fill up while watching, not after a minute.
        projections = msgspec.structs.replace(config.projections, commit_interval=DEMO_COMMIT_INTERVAL)
        config = msgspec.structs.replace(config, projections=projections)
    try:
        with open_store(config) as store:
            parts = _start_parts(config, store, stop, xmpp, args)
            failures = _wait(parts, stop)
    finally:
        if demo is not None:
            demo.stop()
    return 1 if failures else 0


def _start_parts(config, store, stop: threading.Event, xmpp, args) -> dict:
    """Start every part; if one fails to start, stop those already running."""
    parts: dict = {}
    try:
        parts["projections"] = start_projections(config, store, stop)
        parts["search indexer"] = start_search_indexer(config, store, stop)
        parts["listener"] = start_listener(config, store, stop, xmpp=xmpp)
        server = start_api(
            config, store, open_views(config, store), open_search_index(config), stop, host=args.host, port=args.port
        )
        parts["api"] = server
    except BaseException:
        stop.set()
        _join_all(parts)
        raise
    print(f"chat-archive up: API and web pages on {server.url}/", flush=True)
    if args.demo:
        token, _ = open_tokens(config).create(Role.COMPLIANCE, label="demo")
        print(f"chat-archive up: demo sign-in token (compliance role): {token}", flush=True)
    return parts


def _wait(parts: dict, stop: threading.Event) -> list[str]:
    """Run until a signal or until any part stops by itself (which stops the rest)."""
    while not stop.is_set():
        stopped = [name for name, part in parts.items() if not part.is_alive()]
        if stopped:
            log.error("%s stopped; stopping everything", ", ".join(stopped))
            stop.set()
        stop.wait(0.5)
    return _join_all(parts)


def _join_all(parts: dict) -> list[str]:
    failures = []
    for name, part in parts.items():
        try:
            part.join()
        except Exception as e:  # each part reports its own failure; the rest must still stop
            failures.append(f"{name}: {e}")
    if failures:
        print("chat-archive up: " + "; ".join(failures), file=sys.stderr)
    return failures
