"""`events ROOM` and `log`: print archived events as JSON lines."""

from __future__ import annotations

import argparse
import sys

from archive.codec import to_json
from archive.errors import InvalidQueryError
from archive.room_names import RoomNames
from archive.times import parse_time

from ..bootstrap import open_store
from ..cli_audit import ReadTally, audited_cli_read
from ..process import whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    events = subparsers.add_parser("events", help="print a room's events as JSON lines, in order")
    events.add_argument("room", help="the room: its JID (lobby@conference.example.org) or a bare name (lobby)")
    events.add_argument("--from", dest="start", metavar="TIME", help="only events at or after TIME (ISO 8601 or -7d)")
    events.add_argument("--to", dest="end", metavar="TIME", help="only events before TIME")
    events.set_defaults(handler=print_room_events)

    log = subparsers.add_parser("log", help="print the global event log from a position as JSON lines")
    log.add_argument("--after", type=whole_number(0), default=0, metavar="N", help="start after global position N (default 0)")
    log.add_argument("--limit", type=whole_number(0), default=None, metavar="N", help="print at most N events")
    log.set_defaults(handler=print_log)



def time_range(args: argparse.Namespace):
    """(start, end) of ``--from``/``--to``, either None when not given."""
    start = parse_time(args.start) if args.start else None
    end = parse_time(args.end) if args.end else None
    if start and end and end <= start:
        raise InvalidQueryError("--to must be later than --from")
    return start, end


def print_room_events(args: argparse.Namespace, config) -> int:
    start, end = time_range(args)
    with open_store(config) as store:
        room = RoomNames(store.rooms()).one(args.room)
        with audited_cli_read(store, "events", rooms=(room,), range_from=start, range_to=end) as tally:
            _write(store.read_room(room, start=start, end=end), tally)
    return 0


def print_log(args: argparse.Namespace, config) -> int:
    with open_store(config) as store:
        records = store.read_log(args.after)
        if args.limit is not None:
            records = (r for i, r in zip(range(args.limit), records))
        with audited_cli_read(store, "log") as tally:
            _write(records, tally)
    return 0


def _write(records, tally: ReadTally) -> None:
    out = sys.stdout.buffer
    for record in records:
        tally.results += 1
        out.write(b'{"position":%d,"event":%s}\n' % (record.position, to_json(record.event)))
    out.flush()
