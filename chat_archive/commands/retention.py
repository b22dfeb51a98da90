"""`hold` (place, release, list legal holds) and `purge` (delete expired events no hold covers)."""

from __future__ import annotations

import argparse
import sys

import msgspec

from archive.retention import holds_of, owed_deletions, pending_purge, place_hold, release_hold
from archive.times import format_time, parse_time
from query_api.escaping import one_line

from ..bootstrap import open_store
from ..purges import purge_expired
from . import counted, operator


def register(subparsers: argparse._SubParsersAction) -> None:
    hold = subparsers.add_parser("hold", help="legal holds: events they cover survive every purge")
    actions = hold.add_subparsers(dest="action", metavar="ACTION", required=True)
    place = actions.add_parser("place", help="place a hold on rooms, people and/or a time range")
    place.add_argument("--case", required=True, help="the case (matter) the hold is for")
    place.add_argument("--room", action="append", default=[], metavar="JID", help="a room (JID or glob; repeatable; default every room)")
    place.add_argument("--jid", action="append", default=[], metavar="JID", help="a person's JID (repeatable; default everyone)")
    place.add_argument("--from", dest="start", metavar="TIME", help="only events at or after TIME")
    place.add_argument("--to", dest="end", metavar="TIME", help="only events before TIME")
    place.set_defaults(handler=run_place)
    release = actions.add_parser("release", help="release a hold: the next purge may delete what it kept")
    release.add_argument("hold_id", metavar="ID")
    release.add_argument("--reason", default="", help="why (recorded with the release)")
    release.set_defaults(handler=run_release)
    listing = actions.add_parser("list", help="the holds in force")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(handler=run_list)

    purge = subparsers.add_parser(
        "purge", help="delete expired events ([retention]) that no legal hold covers, from the store, views and index"
    )
    purge.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    purge.set_defaults(handler=run_purge)


def run_place(args: argparse.Namespace, config) -> int:
    with open_store(config) as store:
        hold = place_hold(store, case=args.case, rooms=args.room, jids=args.jid, by=operator(),
                          start=parse_time(args.start) if args.start else None,
                          end=parse_time(args.end) if args.end else None)
    print(f"hold {hold.hold_id} placed for case {hold.case!r}")
    return 0


def run_release(args: argparse.Namespace, config) -> int:
    with open_store(config) as store:
        release_hold(store, args.hold_id, by=operator(), reason=args.reason)
    print(f"hold {args.hold_id} released")
    return 0


def run_list(args: argparse.Namespace, config) -> int:
    with open_store(config) as store:
        holds = holds_of(store)
    for hold in holds:
        if args.json:
            print(msgspec.json.encode(hold).decode())
            continue
        span = f" {format_time(hold.hold_from) if hold.hold_from else '…'}..{format_time(hold.hold_to) if hold.hold_to else '…'}"
        # Whoever places a hold names its case, rooms (globs) and people: one line each, escaped.
        print(one_line(f"{hold.hold_id}  case {hold.case!r}  rooms {', '.join(hold.rooms) or 'all'}  "
                       f"people {', '.join(hold.jids) or 'all'}{span if hold.hold_from or hold.hold_to else ''}  "
                       f"placed {format_time(hold.occurred_at)} by {hold.by}"))
    if not holds and not args.json:
        print("no legal holds in force")
    return 0


def run_purge(args: argparse.Namespace, config) -> int:
    with open_store(config) as store:
        unfinished = pending_purge(store) is not None
        owed = owed_deletions(store) if unfinished and args.dry_run else 0
        record = purge_expired(config, store, by=operator(), dry_run=args.dry_run)
    if unfinished:
        print("an earlier purge's deletions or rebuild did not finish: "
              + (f"a purge would first delete the {owed} events its record names that are still stored (a hold "
                 "placed since keeps none of them), then rebuild the views and the search index" if owed
                 else "a purge would rebuild the views and the search index (its deletions are done)" if args.dry_run
                 else "finished its deletions, rebuilt the views and the search index without what it deleted"))
    if record is None:
        print(("nothing more to purge" if unfinished else "nothing to purge")
              + ("" if config.retention.default_days or config.retention.rooms else " (no [retention] period is set)"))
        return 0
    rooms = sorted({span.stream for span in record.spans})
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {counted(record.events, 'event')} from {counted(len(rooms), 'room')} ({record.cutoff_policy})", file=sys.stdout)
    return 0
