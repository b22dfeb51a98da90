"""`verify`: check the archive.

Without options: completeness, against each room's own archive (MAM) on the live
server (``ingest.verify``): per room the server's count, the archived count, what
is missing (``--repair`` stores it), what cannot be checked. `--integrity`
recomputes every stream's hash chain (``archive.integrity``) and names each
stream's first broken link."""

from __future__ import annotations

import argparse
import sys

import msgspec

from archive.errors import ConfigError
from archive.integrity import IntegrityReport, verify_integrity
from archive.room_names import RoomNames
from archive.times import format_time, parse_time
from ingest.verify import RoomReport, verify

from . import counted
from ..bootstrap import open_store
from ..cli_audit import audit_cli_read
from ..demo_guide import running_server


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser(
        "verify",
        help="check the archive: is every message the server's room archives hold archived? (--integrity: the hash chains)",
        description="Without --integrity: compare the archive with each room's archive (MAM) on the server. "
        "Exit status 0 only when no message the server holds is missing from the archive.",
    )  # fmt: skip
    verify.add_argument(
        "--integrity", action="store_true",
        help="recompute every room's hash chain against its links, checkpoints and purge records; "
        "exit 1 naming the first broken link of each broken room",
    )  # fmt: skip
    verify.add_argument("--room", metavar="ROOM", help="check only this room (or stream): its JID or a bare name")
    verify.add_argument("--since", metavar="TIME", help="completeness from TIME on (ISO 8601 or -7d; default: all history)")
    verify.add_argument("--repair", action="store_true", help="store the messages found missing, then check again")
    verify.add_argument("--json", action="store_true", help="print the result as one JSON object")
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace, config) -> int:
    if not args.integrity:
        return run_completeness(args, config)
    if args.since or args.repair:
        print("chat-archive verify: --since and --repair belong to the completeness check, not --integrity", file=sys.stderr)
        return 2
    with open_store(config) as store:
        room = None if args.room is None else RoomNames(store.streams()).one(args.room)
        report = verify_integrity(store, room)
        audit_cli_read(store, "verify --integrity", rooms=(room,) if room else (), results=report.events)
    print_integrity(report, as_json=args.json)
    return 0 if report.ok else 1


def print_integrity(report: IntegrityReport, *, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode({
            "ok": report.ok, "events": report.events, "unchained": report.unchained, "checkpoints": report.checkpoints,
            "last_checkpoint_at": report.last_checkpoint_at, "not_checkpointed": report.not_checkpointed,
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
        f"{counted(report.events, 'event')} in {counted(len(report.streams), 'stream')} verified against their hash "
        f"chains and {counted(report.checkpoints, 'checkpoint')}"
    )
    if report.unchained:
        summary += f"; {counted(report.unchained, 'event')} archived before chaining began are not covered"
    summary += not_checkpointed_yet(report)
    broken = sum(1 for s in report.streams if s.broken is not None)
    print(f"integrity: {'FAILED, ' + str(broken) + ' broken stream(s); ' if broken else 'ok, '}{summary}")


def not_checkpointed_yet(report: IntegrityReport) -> str:
    """What no checkpoint covers yet: a deletion of its streams' last events would leave no broken link to find."""
    if not report.not_checkpointed:
        return ""
    since = (f"after the last checkpoint ({format_time(report.last_checkpoint_at)})" if report.last_checkpoint_at
             else "no checkpoint yet:")
    return (f"; {since} {counted(report.not_checkpointed, 'event')} "
            f"{'is' if report.not_checkpointed == 1 else 'are'} not covered by a checkpoint: a deletion of a room's "
            "last events among them is not detectable until the next ([store] checkpoint_interval, and when up or "
            "listen stops)")


def run_completeness(args: argparse.Namespace, config) -> int:
    # What was asked is checked first (the time, the store, the room), the server then found and named.
    since = parse_time(args.since) if args.since else None
    with open_store(config) as store:
        rooms = store.rooms() if args.room is None else [RoomNames(store.rooms()).one(args.room)]
        xmpp = _server(config)
        reports = verify(xmpp, store, rooms, since=since, repair=args.repair)
        audit_cli_read(store, "verify" + (" --repair" if args.repair else ""), rooms=tuple(rooms), range_from=since,
                       results=sum(r.archived for r in reports))
    missing = sum(r.missing for r in reports)
    if args.json:
        print(msgspec.json.encode({"complete": missing == 0, "missing": missing, "rooms": reports}).decode())
    else:
        for report in reports:
            print(*describe_room(report), sep="\n")
        print(f"{counted(len(reports), 'room')} checked; {counted(missing, 'message')} missing" + ("" if missing else ": complete"))
    return 0 if missing == 0 else 1


def _server(config):
    """The ``[xmpp]`` server to check against: the configured one, else the running demo's of this store."""
    xmpp = config.xmpp if config.xmpp.jid else running_server(config)
    if xmpp is None:
        raise ConfigError(
            "[xmpp] jid is empty: verify checks against the XMPP server the listener archives "
            "(configure [xmpp], or run it beside a running `up --demo` of this store)"
        )
    if not config.xmpp.jid:
        print(f"chat-archive verify: checking against the running demo's server, {xmpp.host}:{xmpp.port}", file=sys.stderr)
    return xmpp


def describe_room(report: RoomReport) -> list[str]:
    # Tombstones: messages the server holds only as removed (XEP-0424/0425), archived with their removal.
    tombstones = f" ({counted(report.tombstones, 'tombstone')})" if report.tombstones else ""
    lines = [
        f"{report.room}: server {report.server}{tombstones}, archived {report.archived}, missing {report.missing}, "
        f"recovered {report.recovered}"
    ]
    if report.missing_ids:
        more = report.missing - len(report.missing_ids)
        lines.append(f"  missing stanza-ids: {', '.join(report.missing_ids)}" + (f" and {more} more" if more else ""))
    for span in report.unverifiable:
        start = format_time(span.start) if span.start else "the beginning"
        end = format_time(span.end) if span.end else "now"
        lines.append(f"  unverifiable {start} .. {end}: {span.why}")
    return lines
