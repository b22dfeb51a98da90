"""`verify`: check the archive. `--integrity` recomputes every stream's hash chain
(``archive.integrity``) and names each stream's first broken link."""

from __future__ import annotations

import argparse
import sys

import msgspec

from archive.integrity import IntegrityReport, verify_integrity

from ..bootstrap import audit_cli_read, open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser("verify", help="check the archive: --integrity recomputes the hash chains")
    verify.add_argument(
        "--integrity", action="store_true",
        help="recompute every room's hash chain against its links, checkpoints and purge records; "
        "exit 1 naming the first broken link of each broken room",
    )  # fmt: skip
    verify.add_argument("--room", metavar="JID", help="check only this room (or stream)")
    verify.add_argument("--json", action="store_true", help="print the result as one JSON object")
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace, config) -> int:
    if not args.integrity:
        print("chat-archive verify: choose a check (--integrity)", file=sys.stderr)
        return 2
    with open_store(config) as store:
        if args.room is not None and args.room not in store.streams():
            print(f"chat-archive verify: no events for room {args.room!r}", file=sys.stderr)
            return 1
        report = verify_integrity(store, args.room)
        audit_cli_read(store, "verify --integrity", rooms=(args.room,) if args.room else (), results=report.events)
    print_integrity(report, as_json=args.json)
    return 0 if report.ok else 1


def print_integrity(report: IntegrityReport, *, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode({
            "ok": report.ok, "events": report.events, "unchained": report.unchained, "checkpoints": report.checkpoints,
            "streams": [
                {"stream": s.stream, "events": s.events, "unchained": s.unchained,
                 "head": s.head, "broken": None if s.broken is None else vars(s.broken)}
                for s in report.streams
            ],
        }).decode())  # fmt: skip
        return
    for result in report.streams:
        if result.broken is not None:
            print(f"BROKEN {result.broken}")
    summary = (
        f"{report.events} events in {len(report.streams)} streams verified against their hash chains "
        f"and {report.checkpoints} checkpoints"
    )
    if report.unchained:
        summary += f"; {report.unchained} events archived before chaining began are not covered"
    broken = sum(1 for s in report.streams if s.broken is not None)
    print(f"integrity: {'FAILED, ' + str(broken) + ' broken stream(s); ' if broken else 'ok, '}{summary}")
