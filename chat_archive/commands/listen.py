"""`listen`: run the XMPP listener alone (e.g. on its own host), until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from ..bootstrap import open_store, start_listener


def register(subparsers: argparse._SubParsersAction) -> None:
    listen = subparsers.add_parser(
        "listen", help="run the XMPP listener alone: archive every allowed room of the [xmpp] MUC services"
    )
    listen.add_argument(
        "--demo", action="store_true", help="start a local Prosody with simulated users and archive that instead"
    )
    listen.set_defaults(handler=run_listener)


def configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("slixmpp").setLevel(logging.WARNING)


def stop_on_signals(stop: threading.Event) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())


def run_listener(args: argparse.Namespace, config) -> int:
    configure_logging()
    stop = threading.Event()
    stop_on_signals(stop)
    settings, demo = config.xmpp, None
    if args.demo:
        from ..demo import start_demo

        settings, demo = start_demo(config)
    try:
        with open_store(config) as store:
            listener = start_listener(config, store, stop, xmpp=settings)
            while listener.is_alive():
                listener.join(0.2)
            listener.join()
    finally:
        if demo is not None:
            demo.stop()
    return 0
