"""`search QUERY`: search the archive's index from the command line."""

from __future__ import annotations

import argparse
import html
import re
import sys
from datetime import datetime, timedelta

import msgspec

from archive.errors import InvalidQueryError
from archive.room_names import RoomNames
from archive.times import format_time, utcnow
from projections.search import Scope, SearchResults, Sort
from query_api.escaping import plain_line

from . import counted
from ..bootstrap import archive_must_exist, open_search_index, open_store
from ..cli_audit import audit_cli_read
from ..process import whole_number

_MARK = re.compile(r"</?mark>")


def register(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser(
        "search",
        help="search messages (query language: see the README, 'Search query language')",
        description='Examples: deploy failed | "exact phrase" from:alice after:-7d | kube* -test room:dev. '
        "A query that starts with - goes last, after -- (else it reads as an option): search --limit 5 -- -bot",
    )
    search.add_argument("query", help="the query, quoted as one shell argument")
    search.add_argument(
        "--room", action="append", metavar="ROOM",
        help="only this room (repeatable): a JID, or a bare name for every room of that name, as room: in the query",
    )  # fmt: skip
    search.add_argument("--sort", choices=[s.value for s in Sort], default=Sort.RELEVANCE.value)
    search.add_argument("--limit", type=whole_number(1, 500), default=20, metavar="N", help="hits per page (1-500, default 20)")
    search.add_argument("--cursor", help="next page: the cursor printed after a page")
    search.add_argument(
        "--compliance", action="store_true", help="also retracted messages and earlier versions of edited ones"
    )
    search.add_argument("--json", action="store_true", help="print the results as one JSON document")
    search.set_defaults(handler=run_search)



def run_search(args: argparse.Namespace, config) -> int:
    archive_must_exist(config)  # before the index is opened (and made)
    index = open_search_index(config)
    rooms = None
    if args.room:
        with open_store(config) as store:
            names = RoomNames([*store.rooms(), *index.rooms()])
        rooms = frozenset(room.lower() for given in args.room for room in names.given(given))
    # Whoever runs the CLI reads the archive's files: every room and real JID.
    scope = Scope(rooms=rooms, compliance=args.compliance, jids=True)
    try:
        results = index.search(
            args.query, scope, sort=args.sort, limit=args.limit, cursor=args.cursor
        )
    except InvalidQueryError as e:
        if e.position is not None:  # show where, under the query
            print(f"  {args.query}\n  {' ' * e.position}^", file=sys.stderr)
        raise
    with open_store(config) as store:
        audit_cli_read(store, "search", rooms=tuple(args.room or ()), query=args.query, results=len(results.hits))
        head = store.head()
        oldest = next(iter(store.read_log(results.index_position, page_size=1)), None)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(results) + b"\n")
    else:
        _print(results, sys.stdout)
    note = behind_note(head, results.index_position, oldest and oldest.event.recorded_at, utcnow(), index.committed_at())
    if note:
        print(f"chat-archive search: note: {note}", file=sys.stderr)
    return 0


def _print(results: SearchResults, out) -> None:
    emphasis = ("\033[1m", "\033[0m") if out.isatty() else ("*", "*")
    for hit in results.hits:
        # What people said, shown as the API's text transcripts show it (no forged lines, no terminal escapes
        # but our emphasis): escaped piece by piece between the marks.
        pieces = (plain_line(html.unescape(piece)) for piece in _MARK.split(hit.snippet))
        marks = iter(emphasis * len(hit.snippet))
        text = next(pieces) + "".join(next(marks) + piece for piece in pieces)
        flags = "".join(f" [{flag}]" for flag, on in (("edited", hit.edited), ("retracted", hit.retracted)) if on)
        out.write(f"{format_time(hit.time)}  {plain_line(hit.room)}  <{plain_line(hit.nick)}>  {text}{flags}  (#{hit.position})\n")
    shown = f"{len(results.hits)} shown" if results.hits else "none shown"
    # Exact: a first page comes with facets, which count every match anyway (``SearchIndex.search``).
    out.write(f"{counted(results.total, 'matching message')}, {shown}\n")
    if results.facets and results.total:
        for label, counts in (("rooms", results.facets.rooms), ("senders", results.facets.senders)):
            out.write(f"  {label}: " + ", ".join(f"{c.value} ({c.count})" for c in counts) + "\n")
    if results.next_cursor:
        out.write(f"next page: --cursor {results.next_cursor}\n")


# The index follows the log within about a second; events younger than this are on their way, not lost.
FRESH = timedelta(seconds=10)
# A catching-up indexer commits every few seconds (projections.search.indexer.CATCH_UP_INTERVAL).
COMMITTING = timedelta(seconds=20)


def behind_note(
    head: int, position: int, oldest_unindexed: datetime | None, now: datetime, committed_at: datetime | None = None
) -> str | None:
    """What to tell whoever searched about events the index has not reached: nothing when it has them all;
    that the newest are on their way while the oldest missing one is fresh (with live traffic that is the
    normal case, not a fault); that the index is catching up when it committed moments ago (after a big
    import, say: the events it lacks may have been recorded long ago); else how far behind it is, since
    when, and what to do about it."""
    if position >= head:
        return None
    missing = head - position
    if oldest_unindexed is not None and now - oldest_unindexed < FRESH:
        return f"the newest events (log positions {position + 1}-{head}, the last few seconds) are not searchable yet"
    events = f"up to {missing} event{'s' if missing != 1 else ''} not searchable"
    since = f", the oldest recorded at {format_time(oldest_unindexed)}" if oldest_unindexed else ""
    if committed_at is not None and now - committed_at < COMMITTING:
        ago = max(0, round((now - committed_at).total_seconds()))
        return (f"the index is catching up (its last commit {ago} s ago): it has reached log position {position} "
                f"of {head}, {events} yet{since}")
    idle = f"; it has not committed since {format_time(committed_at)}" if committed_at is not None else ""
    return (
        f"the index has reached log position {position} of {head}: {events}{since}{idle}"
        " (is the indexer running? `chat-archive up`, or `chat-archive rebuild search`)"
    )
