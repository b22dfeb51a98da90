"""`status`: the log's head, each projection's position and lag, the listener's state, incomplete spans.

Exit status 1 when the listener is down (stopped, killed, disconnected) or behind
(store errors being retried, reading paused, events not stored), 0 otherwise; 0
also where no listener is configured.
"""

from __future__ import annotations

import argparse

import msgspec

from archive.times import format_time
from ingest.status import describe

from ..bootstrap import incomplete_spans, open_store, projection_status, search_status
from ..listener_status import listener_status


def register(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status",
        help="show the log head, projections' lag, the listener's state and rooms, spans that may be incomplete",
        description="Exit status 1 when the listener is down (stopped, killed, disconnected) or behind.",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    status.set_defaults(handler=print_status)


def print_status(args: argparse.Namespace, config) -> int:
    with open_store(config) as store:
        head = store.head()
        projections = [*projection_status(config, store), search_status(config, store)]
        incomplete = incomplete_spans(config, store)
        listener, liveness = listener_status(config, store)
    failed = liveness is not None and not liveness.ok
    if args.json:
        print(msgspec.json.encode({
            "head": head, "projections": projections, "listener": listener, "liveness": liveness,
            "incomplete": incomplete,
        }).decode())  # fmt: skip
        return 1 if failed else 0
    print(f"event log head: {head}")
    for p in projections:
        print(f"projection {p.name:<12} position {p.position:>10}  lag {p.lag:>8}" + (f"  ({p.problem})" if p.problem else ""))
        if p.rebuilding:
            print(f"  {p.rebuilding}")
    for line in describe(listener, liveness):
        print(line)
    if liveness is not None:
        print(f"listener state: {liveness.state}")
        for problem in liveness.problems:
            print(f"  {problem}")
    if incomplete:
        print(f"spans in which messages may be missing ({len(incomplete)}; check with `chat-archive verify --room ROOM`):")
        for gap in incomplete:
            print(f"  {gap.room} {format_time(gap.start)} .. {format_time(gap.end)}: {gap.explanation}")
    return 1 if failed else 0
