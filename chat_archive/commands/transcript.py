"""`transcript ROOM`: a room's transcript as the API serves it."""

from __future__ import annotations

import argparse
import sys

import msgspec

from archive.room_names import RoomNames
from query_api.transcript import text_line

from ..bootstrap import open_store, open_views
from ..cli_audit import audited_cli_read
from .events import time_range

PAGE = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    transcript = subparsers.add_parser(
        "transcript", help="print a room's transcript (lines as the API returns them; --json: JSON lines)"
    )
    transcript.add_argument("room", help="the room: its JID (lobby@conference.example.org) or a bare name (lobby)")
    transcript.add_argument("--from", dest="start", metavar="TIME", help="only lines at or after TIME (ISO 8601 or -7d)")
    transcript.add_argument("--to", dest="end", metavar="TIME", help="only lines before TIME")
    transcript.add_argument("--json", action="store_true", help="one JSON object per line, as the API's lines")
    transcript.add_argument(
        "--originals", action="store_true",
        help="the compliance view: text of removed messages, earlier versions, retractions of unknown messages",
    )  # fmt: skip
    transcript.set_defaults(handler=print_transcript)


def print_transcript(args: argparse.Namespace, config) -> int:
    start, end = time_range(args)
    with open_store(config) as store, open_views(config, store) as views:
        room = RoomNames(store.rooms()).one(args.room)
        out = sys.stdout.buffer
        cursor = None
        with audited_cli_read(store, "transcript", rooms=(room,), range_from=start, range_to=end) as tally:
            while True:  # the view's pages, in transcript order: constant memory however long the room
                page = views.transcripts.page(
                    room, start=start, end=end, cursor=cursor, limit=PAGE, include_originals=args.originals
                )
                for line in page.lines:
                    tally.results += 1
                    out.write(msgspec.json.encode(line) + b"\n" if args.json else text_line(line).encode() + b"\n")
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            out.flush()
    return 0
