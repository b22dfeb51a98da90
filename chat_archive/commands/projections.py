"""`project` and `rebuild`: run the projections alone, rebuild views from the log."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from projections.follower import LogFollower
from projections.rebuild import rebuild

from ..bootstrap import open_store, start_projections, view_projections

VIEW_NAMES = ["transcripts", "presence"]
TARGETS = [*VIEW_NAMES, "search", "all"]


def register(subparsers: argparse._SubParsersAction) -> None:
    project = subparsers.add_parser(
        "project", help="run the transcript and presence projections until SIGINT/SIGTERM (commits on the way out)"
    )
    project.add_argument("--once", action="store_true", help="catch up with the log, commit and exit")
    project.set_defaults(handler=run_projections)

    rebuild_cmd = subparsers.add_parser(
        "rebuild", help="rebuild views from position 0 into fresh tables and swap them in atomically"
    )
    rebuild_cmd.add_argument("what", nargs="?", default="all", choices=TARGETS, help="which view (default: all)")
    rebuild_cmd.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    rebuild_cmd.set_defaults(handler=run_rebuild)


def run_projections(args: argparse.Namespace, config) -> int:
    if args.once:
        return _catch_up(config)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_store(config) as store:
            handle = start_projections(config, store, stop)
            print("chat-archive project: following the event log (SIGINT/SIGTERM stops, committing)", file=sys.stderr)
            while handle.is_alive():
                handle.join(0.2)
            handle.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _catch_up(config) -> int:
    with open_store(config) as store:
        projections, close = view_projections(config, store, VIEW_NAMES)
        try:
            for projection in projections:
                LogFollower(store, projection, commit_interval=config.projections.commit_interval).catch_up()
        finally:
            close()
    return 0


def run_rebuild(args: argparse.Namespace, config) -> int:
    names = [*VIEW_NAMES, "search"] if args.what == "all" else [args.what]
    closers = []
    targets = []
    with open_store(config) as store:
        try:
            view_names = [n for n in names if n in VIEW_NAMES]
            if view_names:
                views, close = view_projections(config, store, view_names)
                targets += views
                closers.append(close)
            if "search" in names:
                targets.append(_search_projection(config))
            report = rebuild(store, targets, progress=not args.quiet)
        finally:
            for close in closers:
                close()
    print(
        f"rebuilt {', '.join(report.projections)}: {report.events:,} events in {report.seconds:.1f} s "
        f"({report.events_per_second:,.0f} events/s), now at position {report.position}",
        file=sys.stderr,
    )
    return 0


def _search_projection(config):
    from projections.search.projection import SearchIndexProjection
    from projections.search.storage import IndexLocation

    return SearchIndexProjection(IndexLocation(config.index.path))
