"""`listen`: run the XMPP listener alone (e.g. on its own host), until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import threading

from ..bootstrap import open_store, start_checkpoints, start_listener
from ..process import configure_logging, stopped_by_signals


def register(subparsers: argparse._SubParsersAction) -> None:
    listen = subparsers.add_parser(
        "listen", help="run the XMPP listener alone: archive every allowed room of the [xmpp] MUC services"
    )
    listen.add_argument(
        "--demo", action="store_true", help="start a local Prosody with simulated users and archive that instead"
    )
    listen.set_defaults(handler=run_listener)


def run_listener(args: argparse.Namespace, config) -> int:
    configure_logging()
    settings, demo = config.xmpp, None
    if args.demo:
        from ..demo import start_demo

        settings, demo = start_demo(config)
    try:
        with stopped_by_signals(threading.Event()) as stop, open_store(config, create=True) as store:
            listener = start_listener(config, store, stop, xmpp=settings)
            checkpoints = start_checkpoints(config, store, stop)
            while listener.is_alive():
                listener.join(0.2)
            stop.set()
            checkpoints.join()
            listener.join()
    finally:
        if demo is not None:
            demo.stop()
    return 0
