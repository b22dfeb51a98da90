"""`audit`: the audit trail (who read what), oldest first; reading it is recorded too."""

from __future__ import annotations

import argparse
import sys

from archive.audit import read_audit, trail_endpoint
from archive.codec import to_json
from archive.events import AUDIT_STREAM, copied_trail
from archive.errors import InvalidQueryError
from archive.times import format_time, parse_time
from query_api.escaping import plain_line

from . import counted
from ..bootstrap import open_store
from ..cli_audit import audited_cli_read


def register(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="print the audit trail: who read what, when, and how many results")
    audit.add_argument("--who", metavar="ID", help="only reads by this token id, site user or role")
    audit.add_argument("--since", metavar="TIME", help="only reads at or after TIME (ISO 8601 or -7d)")
    audit.add_argument("--until", metavar="TIME", help="only reads before TIME")
    audit.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    audit.add_argument("--trail", metavar="NAME", default=AUDIT_STREAM,
                       help="a trail copied from the store this one was migrated or restored from, e.g. "
                       f"{copied_trail(AUDIT_STREAM)} (default: this store's own, {AUDIT_STREAM})")  # fmt: skip
    audit.set_defaults(handler=print_audit)


def print_audit(args: argparse.Namespace, config) -> int:
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    if since and until and until <= since:
        raise InvalidQueryError("--until must be later than --since")
    out = sys.stdout
    with open_store(config) as store:
        trails = store.audit_trails()
        if args.trail != AUDIT_STREAM and args.trail not in trails:
            raise InvalidQueryError(f"--trail: this store keeps no trail {args.trail!r}; its copied trails: "
                                    + (", ".join(t for t in trails if t != AUDIT_STREAM) or "none"))
        with audited_cli_read(store, trail_endpoint("audit", args.trail), query=args.who, range_from=since,
                              range_to=until) as tally:
            for recorded in read_audit(store, who=args.who, since=since, until=until, trail=args.trail):
                tally.results += 1
                out.write(_shown(recorded, as_json=args.json))
            if not tally.results and not args.json:
                out.write("no audit records match\n")
            out.flush()
        for trail in trails if args.trail == AUDIT_STREAM else ():
            if trail != AUDIT_STREAM:
                print(f"chat-archive audit: the reads made on the store this one was migrated or restored from are "
                      f"in its trail {trail}: --trail {trail}", file=sys.stderr)
    return 0


def _shown(recorded, *, as_json: bool) -> str:
    r = recorded.event
    if as_json:
        return f'{{"seq":{recorded.position},"record":{to_json(r).decode()}}}\n'
    who = " ".join(p for p in (r.role, r.token_id and f"token {r.token_id}", r.user and f"user {r.user}") if p)
    what = r.endpoint + (f" rooms={','.join(r.rooms)}" if r.rooms else "") + (f" q={r.query!r}" if r.query else "")
    span = (f" {format_time(r.range_from) if r.range_from else '…'}..{format_time(r.range_to) if r.range_to else '…'}"
            if r.range_from or r.range_to else "")
    result = f" -> {counted(r.results, 'result')}" if r.results is not None else ""
    status = f" [{r.status}]" if r.status and r.status >= 400 else ""
    # Paths, rooms and users are what callers sent: shown escaped, never as the terminal's own sequences.
    return plain_line(f"{format_time(r.occurred_at)}  {r.via:<3}  {who or 'anonymous'}  {what}{span}{result}{status}") + "\n"
