"""`export`: an eDiscovery export bundle (RSMF 2.0, EML per room-day, JSON lines, CSV) with its manifest;
`verify-export FILE`: check a bundle against its manifest, without the archive."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msgspec

from archive.errors import ChatArchiveError
from archive.room_names import RoomNames
from archive.times import parse_time
from query_api.escaping import plain_line
from query_api.exports.bundle import FORMATS, ExportRequest, write_bundle
from query_api.exports.manifest import verify_bundle

from . import counted
from ..bootstrap import open_store, open_search_index, open_views
from ..cli_audit import audited_cli_read
from ..output_file import replaced_whole


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export", help="write an eDiscovery export (RSMF 2.0, EML, JSON lines or CSV) with a manifest, as a ZIP file"
    )
    export.add_argument("--format", choices=FORMATS, default="rsmf", help="rsmf (default), eml, jsonl or csv")
    export.add_argument("--room", action="append", default=[], metavar="ROOM",
                        help="a room to export: its JID, or a bare name for every room of that name (repeatable; default every room)")
    export.add_argument("--from", dest="start", metavar="TIME", help="only what occurred at or after TIME (ISO 8601 or -7d)")
    export.add_argument("--to", dest="end", metavar="TIME", help="only what occurred before TIME")
    export.add_argument("--query", metavar="Q", help="only the messages this search finds, with their edits and removals")
    export.add_argument("-o", "--output", required=True, metavar="FILE", type=_zip_file, help="the ZIP file to write")
    export.set_defaults(handler=run_export)

    check = subparsers.add_parser("verify-export", help="check an export bundle against its manifest (no archive needed)")
    check.add_argument("file", help="the export's ZIP file")
    check.add_argument("--json", action="store_true", help="print the result as one JSON object")
    check.set_defaults(handler=run_verify_export)


def _zip_file(text: str) -> str:
    """An argparse type: the bundle's file. `-` is standard output to `export-log` and `import`, but a bundle
    is written beside its final name and renamed when complete, which a stream cannot be."""
    if text == "-":
        raise argparse.ArgumentTypeError("an export is a ZIP file, not written to standard output: name the file")
    return text


def run_export(args: argparse.Namespace, config) -> int:
    output = Path(args.output)
    with open_store(config) as store, open_views(config, store) as views:
        names = RoomNames(store.rooms())
        request = ExportRequest(
            format=args.format,
            rooms=tuple(room for given in args.room for room in names.given(given)),
            start=parse_time(args.start) if args.start else None,
            end=parse_time(args.end) if args.end else None,
            query=args.query,
        )
        # The rooms as archived (a name in another case reads the room it names, once); none asked: every room.
        with audited_cli_read(store, f"export {args.format}", rooms=tuple(dict.fromkeys(request.rooms)),
                              query=request.query, range_from=request.start, range_to=request.end) as tally:

            def progress(done: int, total: int, events: int) -> None:
                tally.results = events  # an export stopped part way read this much
                _progress(done, total, events)

            with replaced_whole(output) as out:  # the previous file kept if the export fails
                search = open_search_index(config) if request.query is not None else None
                manifest, digest = write_bundle(out, request, store, views, search, progress)
            tally.results = manifest.counts["events"]
    counts = manifest.counts
    print(f"wrote {output}: {counted(counts['events'], 'event')} ({counted(counts['messages'], 'message')}) from "
          f"{counted(counts['rooms'], 'room')} in {counted(counts['files'], 'file')}; manifest SHA-256 {digest}")
    return 0


def _progress(done: int, total: int, events: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{done}/{total} rooms, {events} events", end="" if done < total else "\n", file=sys.stderr, flush=True)


def run_verify_export(args: argparse.Namespace, config) -> int:
    try:
        os.stat(args.file)
    except OSError as e:  # a name mistyped: not a damaged bundle
        raise ChatArchiveError(f"cannot read {args.file}: {e.strerror}") from e
    result = verify_bundle(args.file)
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        # Names and fields are whatever the file holds (a bundle comes from elsewhere): shown escaped, never as
        # the terminal's own sequences or forged lines.
        for problem in result.problems:
            print(plain_line(f"PROBLEM {problem}"))
        if result.manifest is not None:
            m = result.manifest
            print(plain_line(f"{'ok' if result.ok else 'FAILED'}: {counted(len(m.files), 'file')}, {m.counts.get('events')} events, "
                             f"format {m.format}, made {m.created_at}; manifest SHA-256 {result.manifest_sha256}"))
    return 0 if result.ok else 1
