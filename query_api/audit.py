"""The audit trail over HTTP: every read of archived content is recorded, and compliance reads the records.

``install`` adds an ``after_request`` hook to the app: a request to any endpoint in
``AUDITED`` appends one ``ContentRead`` (``archive.audit``), whatever the caller asks
for, failures included (who tried matters as much as who saw). Endpoints say how
many results they served with ``results(n)``; a streamed answer counts what it
streamed through ``stream_tally()`` and is recorded when the stream closes. If the
record cannot be written, a non-streamed answer is replaced by a 503: nothing is
served unrecorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, Flask, Request, Response, g, request

from archive.audit import audit_page, record_read, trail_endpoint
from archive.codec import to_json
from archive.errors import ChatArchiveError, InvalidQueryError
from archive.events import AUDIT_STREAM
from archive.times import parse_time

from . import busy
from .context import api, caller
from .errors import ApiError, bad_parameter, error_response
from .params import Params
from .roles import Capability

log = logging.getLogger(__name__)
bp = Blueprint("audit", __name__)

AUDITED = {
    "search.search": "search",
    "transcript.transcript": "transcript",
    "presence.presence": "presence",
    "presence.state": "state",
    "replay.room_events": "replay",
    "replay.log_events": "replay",
    "export.export": "export",
    "exports.create_export": "export",
    "exports.export_download": "export",
    "web.export_start": "export",
    "web.export_download": "export",
    "audit.audit": "audit",
    "web.room": "transcript",
    "web.search": "search",
    "web.audit_page": "audit",
    "widget.activity": "transcript",
}
"""Flask endpoint -> the kind of read it is."""
PAGE_LIMIT = 1000
T = TypeVar("T")


@dataclass
class Tally:
    """What a streamed answer has sent so far."""

    count: int = 0


def results(count: int) -> None:
    """How many results (messages, lines, events, occupants) this request served."""
    g.audit_results = count


def counting(items: Iterable[T], count: Callable[[T], bool] = lambda _: True) -> Iterator[T]:
    """``items``, counted (those ``count`` accepts) as the request's stream sends them: the
    record is written when the stream closes. Call it inside the request."""
    tally = g.audit_tally = Tally()

    def counted() -> Iterator[T]:
        for item in items:
            tally.count += count(item)
            yield item

    return counted()


def query(text: str) -> None:
    """The query this request ran, where it is not simply its ``q`` parameter (the search page composes it)."""
    g.audit_query = text


def scope(rooms: tuple[str, ...], query: str | None, start: datetime | None, end: datetime | None) -> None:
    """What this request reads, where its query string does not say it: an export's form body, or a job its
    download names only by id. The record then says what was read (``rooms=()`` would mean the whole scope)."""
    g.audit_scope = (rooms, query, start, end)


def install(app: Flask) -> None:
    app.after_request(_record)


def _record(response: Response) -> Response:
    # The request and its globals looked up once: each use of Flask's ``request`` and ``g`` proxies looks
    # them up in the context anew (~40 of the ~100k instructions the record's fields took, callgrind).
    req, ctx = request._get_current_object(), g._get_current_object()
    kind = AUDITED.get(req.endpoint or "")
    if kind is None:
        return response
    fields = _fields(req, ctx, kind, response.status_code)
    store = api().store
    tally = ctx.get("audit_tally")
    if tally is not None and response.is_streamed and response.status_code < 400:
        def write_when_closed() -> None:
            try:
                record_read(store, results=tally.count, **fields)
            except ChatArchiveError as e:  # the stream is gone: nothing to refuse any more
                log.error("audit record of a streamed %s could not be written: %s", kind, e)

        response.call_on_close(write_when_closed)
        return response
    # The commit, which concurrent requests share (archive.group_commit), is the request's last wait: its turn
    # serves another request meanwhile, and the little left of it after runs without one.
    busy.given_up()
    try:
        record_read(store, results=ctx.get("audit_results"), **fields)
    except Exception as e:
        log.error("audit record of %s could not be written: %s", kind, e)
        if response.status_code >= 400:  # an error answer stays what it was
            return response
        if not isinstance(e, ChatArchiveError):
            raise
        # Content that could not be recorded is not served.
        return error_response(
            ApiError(503, "audit_unavailable", "the audit trail cannot be written; try again", headers={"Retry-After": "5"})
        )
    return response


def _fields(req: Request, ctx: Any, kind: str, status: int) -> dict:
    who = ctx.get("caller") or ctx.get("session_caller")  # the API's caller, or a page's signed-in one
    args = req.args.to_dict()  # first values, as werkzeug's get; a dict's get raises nothing for absent names
    given = ctx.get("audit_scope")
    if given is not None:
        rooms, query, start, end = given
    else:
        room = (req.view_args or {}).get("room") or args.get("room")
        rooms = tuple(r for r in (room or "").split(",") if r)
        query = ctx.get("audit_query") or args.get("q") or args.get("who")
        start = _time(args.get("from") or args.get("since") or args.get("at") or args.get("day"))
        end = _time(args.get("to") or args.get("until"))
    return {
        "via": "web" if (req.blueprint or "") == "web" else "api",
        "endpoint": trail_endpoint(f"{kind} {req.path}", ctx.get("audit_trail") or AUDIT_STREAM),
        "token_id": who.token_id if who else None,
        "role": who.role.value if who else None,
        "user": who.user if who else None,
        "rooms": rooms,
        "query": query,
        "range_from": start,
        "range_to": end,
        "status": status,
    }


def _time(text: str | None):
    if not text:
        return None
    try:
        return parse_time(text)
    except (InvalidQueryError, ValueError, OverflowError):
        return None  # the endpoint itself answered the bad value with a 400


def checked_trail(params: Params) -> str:
    """The ``trail`` parameter: the store's own trail (the default) or one it keeps copied from the store it was
    migrated or restored from (``archive.copied_trails``)."""
    trail = g.audit_trail = params.text("trail") or AUDIT_STREAM  # recorded as asked for, refused or not
    if trail != AUDIT_STREAM and trail not in (trails := api().store.audit_trails()):
        copies = ", ".join(t for t in trails if t != AUDIT_STREAM) or "none"
        raise bad_parameter("trail", f"this store keeps no trail {trail!r} (its own: {AUDIT_STREAM}; copied: {copies})")
    return trail


@bp.get("/audit")
def audit() -> Response:
    """Audit records, oldest first: ``who`` (token id, site user or role), ``since``/``until``, ``after``
    (a log position from ``next_after``), ``limit`` and ``trail`` (the store's own, or one copied from the store it
    was migrated or restored from: ``archive.copied_trails``). Compliance only. A page looks at ``archive.audit.SCAN``
    records at most: with a filter, it may hold fewer than ``limit`` (even none) and still a ``next_after``."""
    caller(Capability.AUDIT, "read the audit trail")
    params = Params(request.args, ("who", "since", "until", "after", "limit", "trail"))
    since, until = params.time_range("since", "until")
    after = params.integer("after", 0)
    limit = params.integer("limit", 100, minimum=1, maximum=PAGE_LIMIT)
    trail = checked_trail(params)
    records, next_after = audit_page(api().store, who=params.text("who"), since=since, until=until, after=after,
                                     limit=limit, trail=trail)
    results(len(records))
    body = b'{"records":[%s],"next_after":%s}' % (
        b",".join(b'{"position":%d,"record":%s}' % (r.position, to_json(r.event)) for r in records),
        b"null" if next_after is None else str(next_after).encode(),
    )
    return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})
