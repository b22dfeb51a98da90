"""`up`: the main job in one process: listener, projections, search indexer and API."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

import msgspec

from archive.health import Health

from ..api_root import open_tokens, start_api
from ..bootstrap import (
    open_search_index,
    open_store,
    open_views,
    start_checkpoints,
    start_listener,
    start_projections,
    start_search_indexer,
)
from ..demo_guide import demo_hints, print_guide, publish_server, withdraw_server
from ..purges import start_purges
from ..running_here import only_up_here
from ..process import configure_logging, port_number, stopped_by_signals

log = logging.getLogger("chat_archive.up")
DEMO_COMMIT_INTERVAL = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser(
        "up", help="run everything in one process: listener, projections, search index and API (the main job)"
    )
    up.add_argument(
        "--demo", action="store_true",
        help="start a local Prosody with simulated users talking, archive it, and print a sign-in token",
    )  # fmt: skip
    up.add_argument("--host", help="API bind address (default: [api] host)")
    up.add_argument("--port", type=port_number, help="API port (default: [api] port)")
    up.set_defaults(handler=run_everything)


def run_everything(args: argparse.Namespace, config) -> int:
    configure_logging()
    # Refused before anything starts (a demo's Prosody) or any file is written (the demo's server file).
    with only_up_here(config) as record_url:
        return _run_everything(args, config, record_url)


def _run_everything(args: argparse.Namespace, config, record_url) -> int:
    demo = None
    xmpp = config.xmpp
    if args.demo:
        from ..demo import start_demo

        xmpp, demo = start_demo(config)
        # A newcomer should see transcripts fill up while watching, not after a minute.
        projections = msgspec.structs.replace(config.projections, commit_interval=DEMO_COMMIT_INTERVAL)
        # The widget's Join speaks XMPP from the browser to the demo server's WebSocket endpoint;
        # everything else that reads [xmpp] sees the demo server too.
        api = msgspec.structs.replace(config.api, widget_websocket_url=demo.server.websocket_url)
        config = msgspec.structs.replace(config, projections=projections, api=api, xmpp=xmpp)
        publish_server(config, xmpp)
    try:
        with stopped_by_signals(threading.Event()) as shutdown, open_store(config, create=True) as store:
            running = RunningParts(config, store, xmpp, args, demo, on_serving=record_url)
            failures = running.wait(shutdown)
    finally:
        if demo is not None:
            withdraw_server(config)
            demo.stop()
    return 1 if failures else 0


class RunningParts:
    """The parts of `up`, started in data-flow order and stopped in the same order.

    The listener has a stop event of its own: on shutdown it is stopped first and
    writes what it holds, and only then do the projections, the indexer and the API
    stop, so their final commits include the listener's last events.
    """

    def __init__(self, config, store, xmpp, args, demo=None, on_serving=lambda url: None):
        self.listener_stop = threading.Event()
        self.stop = threading.Event()  # projections, indexer, API; a failing part sets it too
        self.listener = None
        self.checkpoints = None
        self.readers: dict = {}
        health = Health()  # store errors are retried by each part and reported here, not fatal
        try:
            self.readers["projections"] = start_projections(config, store, self.stop, health)
            self.readers["search indexer"] = start_search_indexer(config, store, self.stop, health, rebuild_unusable=True)
            self.listener = start_listener(config, store, self.listener_stop, xmpp=xmpp, health=health)
            self.checkpoints = start_checkpoints(config, store, self.listener_stop, health)
            purges = start_purges(config, store, self.stop)
            if purges is not None:
                self.readers["retention purge"] = purges
            views, index = open_views(config, store), open_search_index(config)
            hints = demo_hints(config, demo.guest) if demo is not None else None
            server = start_api(
                config, store, views, index, self.stop, host=args.host, port=args.port, demo=hints, health=health
            )  # fmt: skip
            self.readers["api"] = server
        except BaseException:
            self._stop_all()
            raise
        on_serving(server.url)
        print(f"chat-archive up: API and web pages on {server.url}/", flush=True)
        if demo is not None:
            tokens = open_tokens(config)
            try:
                print_guide(tokens, config, server.url, hints)
            finally:
                tokens.close()

    def wait(self, shutdown: threading.Event) -> list[str]:
        """Run until ``shutdown`` or until any part stops by itself; then stop all, in order."""
        while not (shutdown.is_set() or self.stop.is_set()):
            stopped = [name for name, part in self._parts() if not part.is_alive()]
            if stopped:
                log.error("%s stopped; stopping everything", ", ".join(stopped))
                break
            shutdown.wait(0.5)
        return self._stop_all()

    def _parts(self):
        yield from self.readers.items()
        if self.listener is not None:
            yield "listener", self.listener
        if self.checkpoints is not None:
            yield "checkpoints", self.checkpoints

    def _stop_all(self) -> list[str]:
        failures = []
        self.listener_stop.set()
        if self.listener is not None:
            failures += _join("listener", self.listener)
        if self.checkpoints is not None:
            failures += _join("checkpoints", self.checkpoints)
        self.stop.set()
        for name, part in self.readers.items():
            failures += _join(name, part)
        if failures:
            print("chat-archive up: " + "; ".join(failures), file=sys.stderr)
        return failures


def _join(name: str, part) -> list[str]:
    try:
        part.join()
    except Exception as e:  # each part reports its own failure; the others must still stop
        return [f"{name}: {e}"]
    return []
