"""`status`: the log's head, each projection's position and lag, and the listener's state."""

from __future__ import annotations

import argparse

import msgspec

from ..bootstrap import listener_status, open_store, projection_status, search_status


def register(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status", help="show the log head, each projection's position and lag, and the listener's rooms"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    status.set_defaults(handler=print_status)


def print_status(args: argparse.Namespace, config) -> int:
    with open_store(config) as store:
        head = store.head()
        projections = [*projection_status(config, store), search_status(config, store)]
    listener = listener_status(config)
    if args.json:
        print(msgspec.json.encode({"head": head, "projections": projections, "listener": listener}).decode())
        return 0
    print(f"event log head: {head}")
    for p in projections:
        print(f"projection {p.name:<12} position {p.position:>10}  lag {p.lag:>8}")
    for line in listener:
        print(line)
    return 0
