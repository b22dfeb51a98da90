"""Replay as NDJSON: a room's events, or the global log, streamed in constant memory.

Each line is ``{"position": N, "event": {...}}`` in the archive's one event
schema; ``position`` is the global log position, the cursor to resume from
(``after=N``). With ``follow=true`` the global stream stays open and tails the
log as events are appended; an idle stream sends an empty line every
``[api] follow_heartbeat`` seconds, which is how a closed client is noticed where the server does not see
it at once (waitress, serving `up` and `serve`, does; `serve --workers`' gunicorn at the second heartbeat after).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import msgspec
from flask import Blueprint, Response, request

from archive.codec import to_json
from archive.events import SYSTEM_STREAMS, Event, Recorded
from archive.times import order_second

from . import audit
from .access import Caller, names_a_jid
from .context import api, caller, limited_stream, visible_room
from .params import Params
from .roles import Capability
from .streams import FOLLOW_POLL_SECONDS

bp = Blueprint("replay", __name__)

CHUNK_BYTES = 64 * 1024
NDJSON = "application/x-ndjson"
FLUSH = b""
HEARTBEAT = b"\n"
_JID_FIELDS = ("jid", "by_jid")


def redact(event: Event, who: Caller) -> Event:
    """The event as ``who`` may see it: real JIDs only for compliance."""
    if who.sees_jids:
        return event
    hidden = {name: None for name in _JID_FIELDS if getattr(event, name, None) is not None}
    if names_a_jid(getattr(event, "actor", None)):
        hidden["actor"] = None
    return msgspec.structs.replace(event, **hidden) if hidden else event


def ndjson_line(record: Recorded, who: Caller) -> bytes:
    return b'{"position":%d,"event":%s}\n' % (record.position, to_json(redact(record.event, who)))


def chunked(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Lines gathered into chunks of about CHUNK_BYTES, so large replays are not one write per
    line; an empty ``FLUSH`` item sends what is gathered at once (a live tail caught up)."""
    buffer = bytearray()
    for line in lines:
        buffer += line
        if len(buffer) >= CHUNK_BYTES or (not line and buffer):
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


@bp.get("/rooms/<room>/events")
def room_events(room: str) -> Response:
    who = caller(Capability.REPLAY)
    room = visible_room(who, room)
    params = Params(request.args, ("after", "from", "to", "limit"))
    after = params.integer("after", 0)
    limit = params.integer("limit", None, minimum=1)
    start, end = params.time_range()
    records = room_records(api().store, room, after, start, end)
    return limited_stream(who, _stream(ndjson_line(r, who) for r in _take(records, limit)))


def room_records(store, room: str, after: int, start, end) -> Iterator[Recorded]:
    """The room's events after position ``after``: in the order archived, or with a time range in the
    room's order (whole second, then position), resuming just after the event at ``after`` there."""
    if not after or (start is None and end is None):
        return (r for r in store.read_room(room, start=start, end=end) if r.position > after)
    anchor = next(iter(store.read_log(after - 1, page_size=1)), None)
    if anchor is None or anchor.position != after or anchor.event.room != room:
        return (r for r in store.read_room(room, start=start, end=end) if r.position > after)
    key = (order_second(anchor.event.occurred_at), after)
    start = max(start, key[0]) if start else key[0]
    return (r for r in store.read_room(room, start=start, end=end) if (order_second(r.event.occurred_at), r.position) > key)


@bp.get("/events")
def log_events() -> Response:
    who = caller(Capability.REPLAY)
    params = Params(request.args, ("after", "follow", "limit"))
    after = params.integer("after", 0)
    limit = params.integer("limit", None, minimum=1)
    follow = params.boolean("follow")
    context = api()
    # The archive's own streams (checkpoints, holds, purges) are not a room anyone replays.
    seen = _memo(lambda room: room not in SYSTEM_STREAMS and who.may_see(room))
    if not follow:
        records = (r for r in context.store.read_log(after) if seen(r.event.room))
        return limited_stream(who, _stream(ndjson_line(r, who) for r in _take(records, limit)))
    # waitress tells whether the client closed its connection (``query_api.server``); gunicorn's workers do not,
    # and their streams end at the second heartbeat written after the close.
    gone = request.environ.get("waitress.client_disconnected", lambda: False)
    alive = lambda: not context.stopping.is_set() and not gone() and context.authorizer.still_valid(who)  # noqa: E731
    tail = follow_log(context.store, after, seen, alive, context.stopping, context.settings.follow_heartbeat)
    lines = (r if isinstance(r, bytes) else ndjson_line(r, who) for r in tail)
    return limited_stream(who, _stream(_take(lines, limit, count=lambda line: line not in (FLUSH, HEARTBEAT))))


def follow_log(
    store, after: int, visible: Callable[[str], bool], alive: Callable[[], bool], stopping, heartbeat: float
) -> Iterator[Recorded | bytes]:
    """The log after ``after`` and then every event appended, while ``alive()`` (the server runs
    and the caller's token is not revoked: checked every poll, through the token cache).

    Yields FLUSH whenever it has caught up with the log after sending something,
    and HEARTBEAT (then FLUSH) when nothing was sent for ``heartbeat`` seconds, and
    at once when there is nothing to send at first: the answer's headers go out
    with the first bytes, and a client should not wait a heartbeat for them.
    """
    last_sent = float("-inf")
    while alive():
        sent = False
        for record in store.read_log(after):
            after = record.position
            if visible(record.event.room):
                sent = True
                yield record
        if sent:
            last_sent = time.monotonic()
            yield FLUSH
        elif time.monotonic() - last_sent >= heartbeat:
            last_sent = time.monotonic()
            yield HEARTBEAT
            yield FLUSH
        stopping.wait(FOLLOW_POLL_SECONDS)


def _stream(lines: Iterable[bytes]) -> Response:
    counted = audit.counting(lines, lambda line: line not in (FLUSH, HEARTBEAT))
    response = Response(chunked(counted), mimetype=NDJSON)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _take(items: Iterable, limit: int | None, count: Callable[[object], bool] = lambda _: True) -> Iterator:
    if limit is None:
        yield from items
        return
    taken = 0
    for item in items:
        yield item
        taken += count(item)
        if taken >= limit:
            return


def _memo(predicate: Callable[[str], bool]) -> Callable[[str], bool]:
    answers: dict[str, bool] = {}

    def cached(room: str) -> bool:
        if room not in answers:
            answers[room] = predicate(room)
        return answers[room]

    return cached
