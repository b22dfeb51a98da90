"""MUC presence -> archive events (XEP-0045 §7, §9, §10.9), as a pure function.

The room view says who is already present, so that an available presence is a
join only for someone new, and a change of show/status, role or affiliation
otherwise. The listener's own presence never becomes an occupant event, but its
removal tells what happened to everyone else (room destroyed, service shut
down, listener kicked: it lost sight of the room).
"""

from __future__ import annotations

import logging
from datetime import datetime
from xml.etree.ElementTree import Element

from archive import events as ev

from .roomview import Occupant, RoomView
from .xmlutil import (
    CLIENT,
    MUC_USER,
    MalformedStanza,
    RoomContext,
    actor_of,
    bare,
    child_text,
    muc_user,
    occupant_id,
    q,
    split_jid,
    status_codes,
)

log = logging.getLogger(__name__)

SELF = 110
NICK_CHANGE = 303
KICKED = 307
BANNED = 301
AFFILIATION_REMOVED = 321
MEMBERS_ONLY_REMOVED = 322
SHUTDOWN = 332

_LEAVE_REASONS = (
    (BANNED, ev.LeaveReason.BANNED),
    (KICKED, ev.LeaveReason.KICKED),
    (AFFILIATION_REMOVED, ev.LeaveReason.REMOVED),
    (MEMBERS_ONLY_REMOVED, ev.LeaveReason.REMOVED),
    (SHUTDOWN, ev.LeaveReason.SHUTDOWN),
)


def is_own_presence(stanza: Element, ctx: RoomContext) -> bool:
    x = muc_user(stanza)
    _, nick = split_jid(stanza.get("from"))
    return nick == ctx.own_nick or (x is not None and SELF in status_codes(x))


def translate_presence(stanza: Element, ctx: RoomContext, view: RoomView, now: datetime) -> list[ev.Event]:
    """The events a presence from ``room/nick`` means; [] for anything else.

    Malformed stanzas are logged and give no events.
    """
    try:
        return _translate(stanza, ctx, view, now)
    except MalformedStanza as e:
        log.warning("skipping malformed presence from %s: %s", stanza.get("from"), e)
        return []


def _translate(stanza: Element, ctx: RoomContext, view: RoomView, now: datetime) -> list[ev.Event]:
    room, nick = split_jid(stanza.get("from"))
    kind = stanza.get("type")
    if room != ctx.room or not nick or kind not in (None, "available", "unavailable"):
        return []
    x = muc_user(stanza)
    if x is None:
        raise MalformedStanza("occupant presence without <x xmlns='muc#user'>")
    codes = status_codes(x)
    item = x.find(q(MUC_USER, "item"))
    base = {"room": ctx.room, "occurred_at": now, "recorded_at": now}
    if nick == ctx.own_nick or SELF in codes:
        return _own_presence(kind, x, codes, item, view, base)
    if item is None:
        raise MalformedStanza("occupant presence without <item>")
    seen = _occupant(nick, stanza, item, ctx)
    if kind == "unavailable":
        return [_departure(seen, x, codes, item, stanza, base)]
    known = view.occupants.get(nick)
    if known is None:
        return [
            ev.OccupantJoined(
                **base,
                nick=nick,
                jid=seen.jid,
                role=seen.role,
                affiliation=seen.affiliation,
                show=seen.show,
                status=seen.status,
                occupant_id=seen.occupant_id,
            )
        ]
    return _changes(known, seen, item, base)


def _occupant(nick: str, stanza: Element, item: Element, ctx: RoomContext) -> Occupant:
    show = child_text(stanza, CLIENT, "show")
    return Occupant(
        nick=nick,
        jid=bare(item.get("jid")),
        role=item.get("role"),
        affiliation=item.get("affiliation"),
        show=show or None,
        status=child_text(stanza, CLIENT, "status"),
        occupant_id=occupant_id(stanza, ctx),
    )


def _departure(seen: Occupant, x: Element, codes: set[int], item: Element, stanza: Element, base: dict) -> ev.Event:
    if NICK_CHANGE in codes:
        new_nick = item.get("nick")
        if not new_nick:
            raise MalformedStanza("status 303 without the new nick")
        return ev.NickChanged(
            **base, old_nick=seen.nick, new_nick=new_nick, jid=seen.jid, occupant_id=seen.occupant_id
        )
    reason = ev.LeaveReason.LEFT
    if x.find(q(MUC_USER, "destroy")) is not None:
        reason = ev.LeaveReason.ROOM_DESTROYED
    for code, meaning in _LEAVE_REASONS:
        if code in codes:
            reason = meaning
            break
    return ev.OccupantLeft(
        **base,
        nick=seen.nick,
        reason=reason,
        jid=seen.jid,
        actor=actor_of(item),
        reason_text=child_text(item, MUC_USER, "reason"),
        status=seen.status,
        occupant_id=seen.occupant_id,
    )


def _changes(known: Occupant, seen: Occupant, item: Element, base: dict) -> list[ev.Event]:
    changes: list[ev.Event] = []
    common = {"jid": seen.jid or known.jid, "occupant_id": seen.occupant_id or known.occupant_id}
    if (seen.show, seen.status) != (known.show, known.status):
        changes.append(ev.PresenceChanged(**base, nick=seen.nick, show=seen.show, status=seen.status, **common))
    actor = actor_of(item)
    reason_text = child_text(item, MUC_USER, "reason")
    if seen.role and seen.role != known.role:
        changes.append(
            ev.RoleChanged(**base, nick=seen.nick, role=seen.role, actor=actor, reason_text=reason_text, **common)
        )
    if seen.affiliation and seen.affiliation != known.affiliation:
        changes.append(
            ev.AffiliationChanged(
                **base, nick=seen.nick, affiliation=seen.affiliation, actor=actor, reason_text=reason_text, **common
            )
        )
    return changes


def _own_presence(
    kind: str | None, x: Element, codes: set[int], item: Element | None, view: RoomView, base: dict
) -> list[ev.Event]:
    """Our own presence: nothing, unless we were removed from the room."""
    if kind != "unavailable" or NICK_CHANGE in codes:
        return []
    destroy = x.find(q(MUC_USER, "destroy"))
    if destroy is not None:
        destroyed = ev.RoomDestroyed(
            **base,
            reason=child_text(destroy, MUC_USER, "reason"),
            alternate_room=destroy.get("jid"),
            actor=actor_of(item),
        )
        return [destroyed, *close_out(view, ev.LeaveReason.ROOM_DESTROYED, base)]
    if SHUTDOWN in codes:
        return close_out(view, ev.LeaveReason.SHUTDOWN, base)
    return close_out(view, ev.LeaveReason.LOST_SIGHT, base)


def close_out(view: RoomView, reason: ev.LeaveReason, base: dict, keep: set[str] = frozenset()) -> list[ev.Event]:
    """Everyone the view has present (except ``keep``) leaves for ``reason``."""
    return [
        ev.OccupantLeft(**base, nick=o.nick, reason=reason, jid=o.jid, occupant_id=o.occupant_id)
        for o in view.occupants.values()
        if o.nick not in keep
    ]


def lost_sight(view: RoomView, now: datetime) -> list[ev.Event]:
    """At the end of a rejoin: occupants the archive had present whom the room no longer lists."""
    base = {"room": view.room, "occurred_at": now, "recorded_at": now}
    return close_out(view, ev.LeaveReason.LOST_SIGHT, base, keep=view.seen)
