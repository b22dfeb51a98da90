"""Compliance export: a search or a room's time range, streamed as JSON lines or CSV.

Every event is exported as archived, edits and retractions included (they are
events of their own). The last line carries the SHA-256 of every byte before
it, so a recipient can tell that the file is complete and unaltered, and its
manifest (rooms, range, query, the rooms' chain heads):
``{"sha256": "<hex>", "count": N, "manifest": {...}}`` for JSON lines,
``# sha256=<hex> count=N manifest={...}`` for CSV. (Bundles with a manifest per
file: ``query_api.exports``.)
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from urllib.parse import quote

import msgspec
from flask import Blueprint, Response, request

from archive.codec import to_json
from archive.errors import NotFoundError
from archive.events import Recorded
from archive.times import format_time
from projections.ranges import in_range, may_hold, positions_in

from . import audit
from .context import api, caller, limited_stream, visible_room
from .errors import ApiError
from .escaping import csv_cell
from .params import Params
from .replay import chunked
from .roles import Capability
from .search import scope_of

bp = Blueprint("export", __name__)

CSV_COLUMNS = (
    "position", "type", "room", "occurred_at", "recorded_at", "capture",
    "nick", "jid", "body", "stanza_id", "message_id", "refers_to", "details",
)  # fmt: skip
_COLUMN_FIELDS = {"room", "occurred_at", "recorded_at", "capture", "nick", "jid", "body", "stanza_id", "message_id"}
_REFERS_TO = ("replaces_id", "target_id")
EXPORT_PAGE = 500


@bp.get("/export")
def export() -> Response:
    who = caller(Capability.EXPORT)
    params = Params(request.args, ("q", "room", "from", "to", "format"))
    fmt = params.choice("format", ("jsonl", "csv"), "jsonl")
    query, room = params.text("q"), params.text("room")
    start, end = params.time_range()
    if room is not None:
        room = visible_room(who, room)
    if query is None:
        if room is None:
            raise ApiError(400, "invalid_parameter", "give q (a search) or room (with optional from and to)")
        records = api().store.read_room(room, start=start, end=end)
        name = room
    else:
        records = search_export_records(who, query, room, start, end)
        name = "search"
    records = audit.counting(records)
    lines = jsonl_lines(records) if fmt == "jsonl" else csv_lines(records)
    rooms = [room] if room is not None else api().visible_rooms(who)
    heads = [h for h in api().store.chain_heads() if h.stream in set(rooms)]
    manifest = {"rooms": rooms, "from": start and format_time(start), "to": end and format_time(end), "query": query,
                "chain_heads": heads}
    response = Response(chunked(with_digest(lines, fmt, manifest)), mimetype="application/x-ndjson" if fmt == "jsonl" else "text/csv")
    response.headers["Content-Disposition"] = _attachment(f"export-{name[:100]}.{fmt}")
    response.headers["Cache-Control"] = "no-store"
    return limited_stream(who, response)


def search_export_records(who, query: str, room: str | None, start, end) -> Iterator[Recorded]:
    """Every message the search finds (oldest first), each followed by its corrections and its
    retraction, as the transcript view links them (in ``room``, one ``visible_room`` gave, if given). The
    first page is fetched before streaming starts, so a malformed query is still a 400."""
    context = api()
    scope = scope_of(who, [room] if room is not None else None)
    first = context.search.search(query, scope, sort="oldest", limit=EXPORT_PAGE, facets=False)

    def records() -> Iterator[Recorded]:
        results = first
        while True:
            for hit in results.hits:
                if may_hold(hit.time, hit.edited or hit.retracted, start, end):
                    yield from message_records(context, hit, start, end)
            if results.next_cursor is None:
                return
            results = context.search.search(
                query, scope, sort="oldest", limit=EXPORT_PAGE, cursor=results.next_cursor, facets=False
            )

    return records()


def message_records(context, hit, start=None, end=None) -> Iterator[Recorded]:
    """The message of a hit and the events that edited or removed it that occurred in ``[start, end)``
    (``ranges.positions_in``: the rule every export format holds a range by), by log position."""
    try:
        line = context.views.transcripts.line(hit.room, hit.position, include_originals=True)
        positions = positions_in(line, start, end)
    except NotFoundError:
        # The transcript view commits less often than the index: edits of this message
        # made since its last commit cannot be linked yet; the message itself is exported.
        positions = [hit.position] if in_range(hit.time, start, end) else []
    for position in positions:
        record = next(iter(context.store.read_log(position - 1, page_size=1)), None)
        if record is not None and record.position == position:
            yield record


def jsonl_lines(records: Iterable[Recorded]) -> Iterator[bytes]:
    for record in records:
        yield b'{"position":%d,"event":%s}\n' % (record.position, to_json(record.event))


def csv_lines(records: Iterable[Recorded]) -> Iterator[bytes]:
    yield _csv_row(CSV_COLUMNS)
    for record in records:
        yield _csv_row([csv_cell(cell) for cell in csv_row(record)])


def csv_row(record: Recorded) -> list[str]:
    """One event as a CSV row; fields without a column of their own go to ``details`` as JSON."""
    event = record.event
    fields = msgspec.structs.asdict(event)
    refers_to = next((fields[name] for name in _REFERS_TO if name in fields), None)
    details = {
        k: v for k, v in fields.items() if k not in _COLUMN_FIELDS and k not in _REFERS_TO and v not in (None, (), "")
    }
    return [
        str(record.position),
        event.__struct_config__.tag,
        event.room,
        format_time(event.occurred_at),
        format_time(event.recorded_at),
        event.capture.value,
        fields.get("nick") or "",
        fields.get("jid") or "",
        fields.get("body") or "",
        fields.get("stanza_id") or "",
        fields.get("message_id") or "",
        refers_to or "",
        msgspec.json.encode(details).decode() if details else "",
    ]


def with_digest(lines: Iterable[bytes], fmt: str, manifest: dict) -> Iterator[bytes]:
    """The lines, then the trailer: the SHA-256 of all of them, their count and the manifest (what was
    asked for and the chain heads of the rooms it covers)."""
    digest = hashlib.sha256()
    count = 0
    for line in lines:
        digest.update(line)
        count += 1
        yield line
    described = msgspec.json.encode(manifest)
    if fmt == "jsonl":
        yield b'{"sha256":"%s","count":%d,"manifest":%s}\n' % (digest.hexdigest().encode(), count, described)
    else:
        yield b"# sha256=%s count=%d manifest=%s\n" % (digest.hexdigest().encode(), count - 1, described)


def _csv_row(values) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


def _attachment(filename: str) -> str:
    """A Content-Disposition naming ``filename``: a header is Latin-1 only (PEP 3333), so the name goes as
    RFC 6266's ``filename*`` (UTF-8, percent-encoded) beside an ASCII fallback for older clients."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "-_.@") else "_" for c in filename)
    encoded = quote(filename.encode("utf-8", "replace"), safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
