"""`GET /rooms`: the rooms the caller may see, with message count, occupants now (at the archive's last known
moment, as `/state` shows a room "now") and last activity.

Served from the views and the index: the room list is the store's room table
(not the log), message counts are one scoped search, occupants come from the
presence view, last activity from the transcript view's last line.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from archive.times import utcnow
from projections.search import IndexUnusable
from projections.views import shown_now

from .access import Caller
from .context import api, caller, json_response
from .errors import bad_parameter
from .params import Params, encode_cursor
from .roles import Capability
from .search import scope_of

bp = Blueprint("rooms", __name__)

DEFAULT_LIMIT = 50


@bp.get("/rooms")
def rooms() -> Response:
    who = caller(Capability.ROOMS)
    params = Params(request.args, ("limit", "cursor"))
    limit = params.integer("limit", DEFAULT_LIMIT, minimum=1, maximum=api().settings.max_page_size)
    cursor = params.cursor("rooms")
    after = cursor.get("after") if cursor else None
    if cursor is not None and not isinstance(after, str):
        raise bad_parameter("cursor", "is not a cursor this API issued")
    visible = page_of_visible_rooms(who, after, limit + 1)
    page, more = visible[:limit], len(visible) > limit
    return json_response({
        "rooms": describe_rooms(page, who),
        "next": encode_cursor({"after": page[-1]}, "rooms") if more else None,
    })  # fmt: skip


def page_of_visible_rooms(who: Caller, after: str | None, count: int) -> list[str]:
    """Up to ``count`` rooms the caller may see, in JID order, after ``after``."""
    return [room for room in api().visible_rooms(who) if after is None or room > after][:count]


def describe_rooms(rooms: list[str], who: Caller) -> list[dict]:
    """Message count (as the caller would find them), occupants now and last activity of each room;
    briefly cached per page of rooms (views commit every minute, the index within a second)."""
    context = api()
    key = (tuple(rooms), who.sees_originals)
    return context.summaries.get_or_compute(key, lambda: _describe(context, rooms, who))


def _describe(context, rooms: list[str], who: Caller) -> list[dict]:
    views, search = context.views, context.search
    counts = message_counts(search, rooms, who)
    # Each room at its last known moment, as `/state` shows a room "now" (a room the listener is away from is
    # known only until it went away: ``Views.known_until``); one read of them for the page.
    items, known = [], views.rooms_last_known(rooms)
    for room in rooms:
        known_until = known[room].until
        now = shown_now(known_until, utcnow())
        occupants = views.presence.occupants_at(room, now, known_until=known_until)
        last = views.transcripts.page(room, direction="backward", limit=1).lines
        items.append({
            "room": room,
            "messages": counts.get(room.lower(), 0) if counts is not None else None,
            "occupants_now": len(occupants.occupants),
            "presence_known": occupants.known,
            "presence_as_of": now,
            "last_activity": last[-1].at if last else None,
        })  # fmt: skip
    return items


def message_counts(search, rooms: list[str], who: Caller) -> dict[str, int] | None:
    """Messages per room as the caller would find them (one search, scoped to ``rooms``); None while the
    index cannot be used (being rebuilt after an upgrade): the rest of the list does not need it."""
    if not rooms:
        return {}
    try:
        results = search.search("", scope_of(who, rooms), limit=1, facets=True, facet_size=len(rooms))
    except IndexUnusable:
        return None
    return {facet.value: facet.count for facet in results.facets.rooms}
