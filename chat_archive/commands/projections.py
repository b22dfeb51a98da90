"""`project` and `rebuild`: run the projections alone, rebuild views from the log."""

from __future__ import annotations

import argparse
import sys
import threading

from archive.lease import holding
from archive.retention import finish_purges, pending_purge
from projections.follower import LogFollower
from projections.search import SearchIndexer

from ..bootstrap import (
    open_store,
    followed_view,
    open_views,
    rebuild_projections,
    search_projection,
    start_projections,
    start_search_indexer,
    views_url,
)
from ..process import stopped_by_signals
from ..purges import ALL_PROJECTIONS, apply_purge, erase_purged_copies
from ..views_lease import purge_lease, views_lease
from . import operator

VIEW_NAMES = ["transcripts", "presence"]
TARGETS = [*ALL_PROJECTIONS, "all"]


def register(subparsers: argparse._SubParsersAction) -> None:
    project = subparsers.add_parser(
        "project", help="run the projections (views and search index) until SIGINT/SIGTERM, committing on the way out"
    )
    project.add_argument("--once", action="store_true", help="catch up with the log, commit and exit")
    only = project.add_mutually_exclusive_group()
    only.add_argument("--no-search", action="store_true",
                      help="transcripts and presence only (the search index is kept by another process)")
    only.add_argument("--search-only", action="store_true",
                      help="the search index ([index] path) only: one per API host, each keeping a local index")
    project.set_defaults(handler=run_projections)

    rebuild_cmd = subparsers.add_parser(
        "rebuild", help="rebuild views from position 0 into fresh tables and swap them in atomically"
    )
    rebuild_cmd.add_argument("what", nargs="?", default="all", choices=TARGETS, help="which view (default: all)")
    rebuild_cmd.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    rebuild_cmd.set_defaults(handler=run_rebuild)


def run_projections(args: argparse.Namespace, config) -> int:
    views, search = not args.search_only, not args.no_search
    if args.once:
        return _catch_up(config, views=views, search=search)
    with stopped_by_signals(threading.Event()) as stop, open_store(config, create=True) as store:
        handles = []
        if search:  # first: a second indexer on the same directory fails here, before anything runs
            handles.append(start_search_indexer(config, store, stop, rebuild_unusable=True))
        if views:
            try:
                handles.append(start_projections(config, store, stop))
            except BaseException:  # another runner keeps the views: the indexer started stops, committing
                stop.set()
                for handle in handles:
                    handle.join()
                raise
        print("chat-archive project: following the event log (SIGINT/SIGTERM stops, committing)", file=sys.stderr)
        while any(h.is_alive() for h in handles):
            handles[0].join(0.2)
        for handle in handles:
            handle.join()
    return 0


def _catch_up(config, *, views: bool, search: bool) -> int:
    with open_store(config) as store:
        if views:
            with holding(views_lease(store, views_url(config))), open_views(config, store) as views:
                for name in VIEW_NAMES:
                    view = followed_view(config, store, views, name)
                    LogFollower(store, view, commit_interval=config.projections.commit_interval).catch_up()
        if search:
            index = search_projection(config)
            try:
                SearchIndexer(store, index, commit_interval=config.index.commit_interval).catch_up()
            finally:
                index.close()
    return 0


def run_rebuild(args: argparse.Namespace, config) -> int:
    with open_store(config) as store, purge_lease(store) as lease:  # a purge deleting under the read would be undone
        unapplied = pending_purge(store) if args.what == "all" else None
        if unapplied is None:
            report = rebuild_projections(config, store, ALL_PROJECTIONS if args.what == "all" else [args.what],
                                         progress=not args.quiet, lease=lease)
        else:  # an interrupted purge's rebuild, done by hand: as the purge would have finished it
            finish_purges(store)
            report = apply_purge(config, store, unapplied, by=operator(), progress=not args.quiet, lease=lease)
        print(
            f"rebuilt {', '.join(report.projections)}: {report.events:,} events in {report.seconds:.1f} s "
            f"({report.events_per_second:,.0f} events/s), now at position {report.position}",
            file=sys.stderr,
        )
        if unapplied is not None:
            print("an earlier purge's rebuild did not finish: its deletions finished, this rebuild left them out "
                  "(recorded applied); erasing their copies", file=sys.stderr)
            erase_purged_copies(config, store)  # a failure (a reader holding a log) is retried by every purge
    return 0
