"""`GET /rooms/{room}/presence` and `GET /rooms/{room}/state`: from the presence view and the room's state at T.

Presence: ``at=T`` is who was in the room then; ``from``/``to`` is occupancy
counts over the range (``buckets`` of equal length), the archive gaps in it,
and the intervals (stays) of the people there: of one person named by
``nick`` (or ``jid``, compliance only), else of everyone, paged by nick (and
within a person's stays when a page's budget of stays read runs out). State:
occupants, subject and the transcript as it read at T (``projections.pointintime``).
"""

from __future__ import annotations

import msgspec
from flask import Blueprint, Response, request

from archive.times import utcnow
from projections.views import shown_now

from . import audit
from .access import Caller
from .context import api, caller, json_response, visible_room
from .errors import bad_parameter
from .params import Params, encode_cursor
from .roles import Capability
from .transcript import shown

bp = Blueprint("presence", __name__)


def views():
    return api().views


def without_jids(struct, who: Caller):
    """An occupant, span or stay without its real JID unless the caller is compliance."""
    if who.sees_jids or getattr(struct, "jid", None) is None:
        return struct
    return msgspec.structs.replace(struct, jid=None)


@bp.get("/rooms/<room>/presence")
def presence(room: str) -> Response:
    who = caller(Capability.PRESENCE)
    room = visible_room(who, room)
    params = Params(request.args, ("at", "from", "to", "buckets", "nick", "jid", "limit", "cursor"))
    at = params.time("at")
    start, end = params.time_range()
    limit = params.integer("limit", 100, minimum=1, maximum=1000)
    cursor = params.cursor("presence")
    after = cursor.get("after") if cursor else None  # the last person of a page of people
    resume = cursor.get("stay") if cursor else None  # the last stay read (of person ``after``), whose stays go on
    if cursor is not None and (after is None and resume is None or after is not None and not isinstance(after, str)
                               or resume is not None and not is_stay_number(resume)):
        raise bad_parameter("cursor", "is not a cursor this API issued")
    if at is not None:
        if start or end or params.text("nick") or params.text("jid"):
            raise bad_parameter("at", "cannot be combined with from, to, nick or jid")
        page = occupants_page(room, at, who, after, limit)
        audit.results(len(page["occupants"]))
        return json_response(page)
    if start is None and end is None:
        raise bad_parameter("at", "give at=T (occupants then) or from and to (a range)")
    if start is None or end is None:
        missing, given = ("to", "from") if end is None else ("from", "to")
        raise bad_parameter(missing, f"is required with {given} (a range); or give at=T alone")
    buckets = params.integer("buckets", 24, minimum=1, maximum=1000)
    nick, jid = params.text("nick", max_length=1024), params.text("jid", max_length=3071)
    if jid is not None and not who.sees_jids:
        raise bad_parameter("jid", "only the compliance role may look people up by real JID")
    if nick is not None and jid is not None:
        raise bad_parameter("nick", "give nick or jid, not both")
    presence_view = views().presence
    known_until = views().known_until(room)
    result = {
        "room": room,
        "from": start,
        "to": end,
        "known_until": known_until,
        "occupancy": presence_view.occupancy(room, start, end, buckets=buckets, known_until=known_until).buckets,
        "gaps": presence_view.gaps(room, start=start, end=end),
    }
    if nick is not None or jid is not None:
        if after is not None:
            raise bad_parameter("cursor", "pages the people of a range; not with nick or jid")
        page = presence_view.stays_page(room, nick=nick, jid=jid, start=start, end=end, limit=limit, after=resume)
        stays = page.stays
        goes_on = stays and (page.more or len(stays) == limit)
        result["next"] = encode_cursor({"stay": stays[-1].id}, "presence") if goes_on else None
    else:
        if cursor is not None and after is None:
            raise bad_parameter("cursor", "pages one person's stays; give its nick or jid")
        read = presence_view.people_stays(room, start, end, people=limit, after=after and (after, resume))
        stays, (nick, stay) = read.stays, read.next or (None, None)
        state = {"after": nick} if stay is None else {"after": nick, "stay": stay}
        result["next"] = None if nick is None else encode_cursor(state, "presence")
    audit.results(len(stays))
    result["stays"] = [
        without_jids(msgspec.structs.replace(s, spans=[without_jids(x, who) for x in s.spans]), who) for s in stays
    ]
    return json_response(result)


def occupants_page(room: str, at, who: Caller, after: str | None, limit: int) -> dict:
    """Who was in the room at ``at``, by nick, ``limit`` at a time after ``after``."""
    known = views().last_known(room)
    there = views().presence.occupants_at(room, at, known_until=known.until, away_since=known.away_since)
    occupants = sorted((o for o in there.occupants if after is None or o.nick > after), key=lambda o: o.nick)
    page = occupants[:limit]
    return {
        "room": room,
        "at": at,
        "known": there.known,
        "known_until": there.known_until,
        "gap": there.gap,
        "unknown_why": there.unknown_why,
        "occupants": [without_jids(o, who) for o in page],
        "possibly_present": [without_jids(o, who) for o in there.possibly_present] if after is None else [],
        "next": encode_cursor({"after": page[-1].nick}, "presence") if len(occupants) > limit else None,
    }


def is_stay_number(value) -> bool:
    return type(value) is int and 0 <= value < 2**63


@bp.get("/rooms/<room>/state")
def state(room: str) -> Response:
    who = caller(Capability.STATE)
    room = visible_room(who, room)
    params = Params(request.args, ("at", "since", "limit"))
    # No moment named: the room as the archive last knew it (just after it, "now", presence is not known yet).
    last = views().last_known(room)
    at = params.time("at") or shown_now(last.until, utcnow())
    since = params.time("since")
    limit = params.integer("limit", 200, minimum=0, maximum=5000)
    result = views().room_state_at(room, at, last=last, limit=limit, since=since,
                                   include_originals=who.sees_originals)
    audit.results(len(result.occupants) + len(result.lines))
    return json_response(msgspec.structs.replace(
        result,
        occupants=[without_jids(o, who) for o in result.occupants],
        lines=[shown(line, who) for line in result.lines],
    ))  # fmt: skip
