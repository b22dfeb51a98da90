"""`transcript ROOM`: a room's transcript as the API serves it, and `import FILE`: events into the store."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from archive.codec import from_json
from archive.errors import ChatArchiveError, EventDecodeError
from archive.events import Event
from archive.store import MAX_BATCH
from query_api.transcript import text_line

from ..bootstrap import audit_cli_read, open_store, open_views
from .events import time_range

PAGE = 1000
GZIP_MAGIC = b"\x1f\x8b"
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def register(subparsers: argparse._SubParsersAction) -> None:
    transcript = subparsers.add_parser(
        "transcript", help="print a room's transcript (lines as the API returns them; --json: JSON lines)"
    )
    transcript.add_argument("room", help="room JID, e.g. lobby@conference.example.org")
    transcript.add_argument("--from", dest="start", metavar="TIME", help="only lines at or after TIME (ISO 8601 or -7d)")
    transcript.add_argument("--to", dest="end", metavar="TIME", help="only lines before TIME")
    transcript.add_argument("--json", action="store_true", help="one JSON object per line, as the API's lines")
    transcript.add_argument(
        "--originals", action="store_true",
        help="the compliance view: text of removed messages, earlier versions, retractions of unknown messages",
    )  # fmt: skip
    transcript.set_defaults(handler=print_transcript)

    importer = subparsers.add_parser(
        "import", help="append events from JSON lines (as `chat-archive log` prints them, or bare events; "
        "gzip-compressed or not, e.g. from `export-log`); idempotent",
    )
    importer.add_argument("file", help="a file of JSON lines (.gz or plain), or - for standard input")
    importer.set_defaults(handler=import_events)


def print_transcript(args: argparse.Namespace, config) -> int:
    start, end = time_range(args)
    with open_store(config) as store, open_views(config, store) as views:
        if args.room not in store.rooms():
            print(f"chat-archive transcript: no events for room {args.room!r}", file=sys.stderr)
            return 1
        out = sys.stdout.buffer
        count, cursor = 0, None
        while True:  # the view's pages, in transcript order: constant memory however long the room
            page = views.transcripts.page(
                args.room, start=start, end=end, cursor=cursor, limit=PAGE, include_originals=args.originals
            )
            for line in page.lines:
                out.write(msgspec.json.encode(line) + b"\n" if args.json else text_line(line).encode() + b"\n")
            count += len(page.lines)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        out.flush()
        audit_cli_read(store, "transcript", rooms=(args.room,), range_from=start, range_to=end, results=count)
    return 0


def import_events(args: argparse.Namespace, config) -> int:
    if args.file == "-":
        events = list(read_events(file_lines(sys.stdin.buffer, "standard input"), "standard input"))
        return _append(config, [events], "standard input")
    try:
        with open(args.file, "rb") as f:  # first every line is checked, so a bad file imports nothing
            for _ in read_events(file_lines(f, args.file), args.file):
                pass
    except OSError as e:
        raise ChatArchiveError(f"cannot read {args.file}: {e.strerror}") from e
    with open(args.file, "rb") as f:
        return _append(config, _batches(read_events(file_lines(f, args.file), args.file)), args.file)


def _append(config, batches, source: str) -> int:
    new = seen = 0
    with open_store(config) as store:
        for batch in batches:
            stored = len(store.append(batch))
            new, seen = new + stored, seen + len(batch) - stored
    print(f"imported {new} new events from {source} ({seen} already archived)")
    return 0


def file_lines(raw: BinaryIO, source: str) -> Iterator[bytes]:
    """The lines of a file (gzip-compressed or not); a trailer ``{"sha256": ..., "count": N, ...}``
    (``export-log``, exports) must match the lines before it, or the file is refused."""
    stream = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == GZIP_MAGIC else raw
    digest, count = hashlib.sha256(), 0
    try:
        for line in stream:
            if line.startswith(b'{"sha256"'):
                trailer = msgspec.json.decode(line)
                if trailer.get("sha256") != digest.hexdigest() or trailer.get("count") != count:
                    raise EventDecodeError(f"{source}: the lines do not match the trailer's SHA-256 and count: "
                                           "the file was altered or is incomplete")  # fmt: skip
            else:
                digest.update(line)
                count += 1
            yield line
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise EventDecodeError(f"{source}: cannot read it: {e}") from None


def read_events(lines, source: str) -> Iterator[Event]:
    """The events of JSON lines: ``{"position": N, "event": {...}}`` (``log``, ``events``,
    exports) or a bare event; blank lines and an export's digest trailer are skipped."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            fields = _fields(raw)
        except msgspec.DecodeError as e:
            raise EventDecodeError(f"{source}, line {number}: not a JSON object ({e})") from None
        if "sha256" in fields and "type" not in fields:
            continue
        try:
            yield from_json(fields["event"] if "event" in fields else raw)
        except EventDecodeError as e:
            raise EventDecodeError(f"{source}, line {number}: {e}") from None


def _batches(events: Iterator[Event]) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) == MAX_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
