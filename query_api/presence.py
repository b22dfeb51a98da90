"""`GET /rooms/{room}/presence` and `GET /rooms/{room}/state`: from the presence view and the room's state at T.

Presence: ``at=T`` is who was in the room then; ``from``/``to`` is occupancy
counts over the range (``buckets`` of equal length), the archive gaps in it,
and, for one person named by ``nick`` (or ``jid``, compliance only), the
intervals they were there. State: occupants, subject and the transcript as
it read at T (``projections.pointintime``).
"""

from __future__ import annotations

import msgspec
from flask import Blueprint, Response, request

from archive.times import utcnow

from .access import Caller
from .context import api, caller, json_response, unavailable, visible_room
from .errors import bad_parameter
from .params import Params
from .roles import Capability
from .transcript import shown

bp = Blueprint("presence", __name__)


def views():
    views = api().views
    if views is None:
        raise unavailable("the presence view")
    return views


def without_jids(struct, who: Caller):
    """An occupant, span or stay without its real JID unless the caller is compliance."""
    if who.sees_jids or getattr(struct, "jid", None) is None:
        return struct
    return msgspec.structs.replace(struct, jid=None)


@bp.get("/rooms/<room>/presence")
def presence(room: str) -> Response:
    who = caller(Capability.PRESENCE)
    visible_room(who, room)
    params = Params(request.args, ("at", "from", "to", "buckets", "nick", "jid", "limit"))
    at = params.time("at")
    start, end = params.time_range()
    if at is not None:
        if start or end or params.text("nick") or params.text("jid"):
            raise bad_parameter("at", "cannot be combined with from, to, nick or jid")
        occupants = views().presence.occupants_at(room, at)
        return json_response(msgspec.structs.replace(
            occupants,
            occupants=[without_jids(o, who) for o in occupants.occupants],
            possibly_present=[without_jids(o, who) for o in occupants.possibly_present],
        ))  # fmt: skip
    if start is None or end is None:
        raise bad_parameter("at", "give at=T (occupants then) or from and to (a range)")
    buckets = params.integer("buckets", 24, minimum=1, maximum=1000)
    result = {
        "room": room,
        "from": start,
        "to": end,
        "occupancy": views().presence.occupancy(room, start, end, buckets=buckets).buckets,
        "gaps": views().presence.gaps(room, start=start, end=end),
    }
    nick, jid = params.text("nick", max_length=1024), params.text("jid", max_length=3071)
    limit = params.integer("limit", 100, minimum=1, maximum=1000)
    if jid is not None and not who.sees_jids:
        raise bad_parameter("jid", "only the compliance role may look people up by real JID")
    if nick is not None and jid is not None:
        raise bad_parameter("nick", "give nick or jid, not both")
    if nick is not None or jid is not None:
        stays = views().presence.stays(room, nick=nick, jid=jid, start=start, end=end, limit=limit)
        result["stays"] = [
            without_jids(msgspec.structs.replace(s, spans=[without_jids(x, who) for x in s.spans]), who) for s in stays
        ]
    return json_response(result)


@bp.get("/rooms/<room>/state")
def state(room: str) -> Response:
    who = caller(Capability.STATE)
    visible_room(who, room)
    params = Params(request.args, ("at", "since", "limit"))
    at = params.time("at") or utcnow()
    since = params.time("since")
    limit = params.integer("limit", 200, minimum=0, maximum=5000)
    result = views().room_state_at(room, at, limit=limit, since=since, include_originals=who.sees_originals)
    return json_response(msgspec.structs.replace(
        result,
        occupants=[without_jids(o, who) for o in result.occupants],
        lines=[shown(line, who) for line in result.lines],
    ))  # fmt: skip
