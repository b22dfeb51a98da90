"""Groupchat messages -> archive events, as pure functions.

Covers XEP-0045 messages and subjects, XEP-0359 ids, XEP-0203 delays on replayed
history, XEP-0308 corrections, XEP-0424 retractions and XEP-0425 moderation
(current ``:1`` namespaces and the older fastening-based ``:0`` ones), affiliation
notices for users not in the room, and XEP-0313 archive results, including the
tombstones servers leave in a room's archive in place of a retracted or moderated
message.
"""

from __future__ import annotations

import logging
from datetime import datetime
from xml.etree.ElementTree import Element

from archive import events as ev

from .roomview import RoomView
from .xmlutil import (
    CLIENT,
    CORRECT,
    DELAY,
    FASTEN,
    FORWARD,
    MAM,
    MODERATE,
    MODERATE_0,
    MUC_USER,
    RETRACT,
    RETRACT_0,
    MalformedStanza,
    RoomContext,
    actor_of,
    bare,
    child_text,
    muc_user,
    occupant_id,
    origin_id,
    parse_stamp,
    q,
    room_delay,
    room_stanza_id,
    split_jid,
)

log = logging.getLogger(__name__)


def translate_message(
    stanza: Element,
    ctx: RoomContext,
    view: RoomView,
    now: datetime,
    *,
    archived: tuple[str, datetime, ev.Capture] | None = None,
) -> list[ev.Event]:
    """The events a groupchat message from the room means; [] for anything else.

    ``archived`` = (archive id, archive stamp, capture) for a message unwrapped
    from a MAM result: the archive's id is the room's stanza-id (XEP-0313 §5).
    """
    try:
        return _translate(stanza, ctx, view, now, archived)
    except MalformedStanza as e:
        log.warning("skipping malformed message from %s: %s", stanza.get("from"), e)
        return []


def translate_archived(result: Element, ctx: RoomContext, view: RoomView, now: datetime, capture: ev.Capture):
    """A MAM ``<message><result id=...><forwarded>`` wrapper -> events of the archived message."""
    try:
        found = result.find(q(MAM, "result"))
        if found is None:
            raise MalformedStanza("not a MAM result")
        forwarded = found.find(q(FORWARD, "forwarded"))
        inner = None if forwarded is None else forwarded.find(q(CLIENT, "message"))
        delay = None if forwarded is None else forwarded.find(q(DELAY, "delay"))
        if inner is None or delay is None or not found.get("id"):
            raise MalformedStanza("MAM result without id, forwarded message or delay")
        archived = (found.get("id"), parse_stamp(delay.get("stamp")), capture)
    except MalformedStanza as e:
        log.warning("skipping malformed archive result from %s: %s", result.get("from"), e)
        return []
    return translate_message(inner, ctx, view, now, archived=archived)


def _translate(stanza, ctx, view, now, archived) -> list[ev.Event]:
    room, nick = split_jid(stanza.get("from"))
    if room != ctx.room:
        return []
    if stanza.get("type") != "groupchat":
        if stanza.get("type") in (None, "normal") and not nick and not archived:
            # XEP-0045 §9 (example 195): a plain message announces affiliation changes of absent users.
            return _affiliation_notice(stanza, None, {"room": ctx.room, "occurred_at": now, "recorded_at": now})
        return []
    if archived:
        stanza_id, occurred_at, capture = archived
    else:
        stanza_id = room_stanza_id(stanza, ctx)
        # Only the history the room replays on join carries its delay; a client can add a <delay from=room> to
        # anything it posts (Prosody strips it, XEP-0045 does not require a service to), which must not backdate it.
        delayed = room_delay(stanza, ctx.room) if view.replaying else None
        occurred_at = delayed or now
        capture = ev.Capture.HISTORY if delayed else ev.Capture.LIVE
    base = {"room": ctx.room, "occurred_at": occurred_at, "recorded_at": now, "capture": capture}
    retraction = _retraction(stanza, nick, ctx, view, base, stanza_id)
    if retraction:
        return [retraction]
    body = child_text(stanza, CLIENT, "body")
    if body is None and capture != ev.Capture.LIVE and (tombstone := _tombstone_parts(stanza)):
        return _tombstone(stanza, nick, ctx, view, base, stanza_id, *tombstone)
    subject = child_text(stanza, CLIENT, "subject")
    if body is None:
        if subject is not None:
            return _subject(subject, nick, view, base)
        return _affiliation_notice(stanza, nick, base)
    if not nick:
        return []  # the room itself speaking (e.g. configuration notices)
    ids = {
        "stanza_id": stanza_id,
        "message_id": stanza.get("id"),
        "origin_id": origin_id(stanza),
        "jid": _sender_jid(stanza, nick, view, capture, occupant_id(stanza, ctx)),
        "occupant_id": occupant_id(stanza, ctx),
    }
    replace = stanza.find(q(CORRECT, "replace"))
    if replace is not None:
        if not replace.get("id"):
            raise MalformedStanza("correction without the id it replaces")
        return [ev.MessageCorrected(**base, nick=nick, replaces_id=replace.get("id"), body=body, **ids)]
    lang = stanza.get("{http://www.w3.org/XML/1998/namespace}lang")
    thread = child_text(stanza, CLIENT, "thread")
    return [ev.MessagePosted(**base, nick=nick, body=body, thread=thread or None, lang=lang, **ids)]


def _sender_jid(stanza: Element, nick: str, view: RoomView, capture: ev.Capture, occupant: str | None) -> str | None:
    """The sender's real JID: as the room attached it (MAM results may), else as the room's occupant
    list tells it: by occupant-id (stable across nicks and visits), else by nick, for an archived
    message only when the occupant-ids do not tell a different person."""
    x = muc_user(stanza)
    item = None if x is None else x.find(q(MUC_USER, "item"))
    if item is not None and item.get("jid"):
        return bare(item.get("jid"))
    if occupant and occupant in view.jids:
        return view.jids[occupant]
    present = view.occupants.get(nick)
    if present is None:
        return None
    if capture != ev.Capture.LIVE and occupant and present.occupant_id and occupant != present.occupant_id:
        return None  # the nick belongs to someone else now
    return present.jid


def _subject(subject: str, nick: str | None, view: RoomView, base: dict) -> list[ev.Event]:
    # The room re-sends its subject on every join: that is current state, a
    # change only if it differs from what the archive holds.
    if view.replaying and subject == (view.subject or ""):
        return []
    return [ev.SubjectChanged(**base, subject=subject, nick=nick)]


def _affiliation_notice(stanza: Element, nick: str | None, base: dict) -> list[ev.Event]:
    """XEP-0045 §9: the room tells of an affiliation change of someone not present."""
    x = muc_user(stanza)
    item = None if x is None or nick else x.find(q(MUC_USER, "item"))
    if item is None or not item.get("affiliation"):
        return []
    return [
        ev.AffiliationChanged(
            **base,
            affiliation=item.get("affiliation"),
            nick=item.get("nick"),
            jid=bare(item.get("jid")),
            actor=actor_of(item),
            reason_text=child_text(item, MUC_USER, "reason"),
        )
    ]


def _retraction(stanza, nick, ctx, view, base, stanza_id) -> ev.MessageRetracted | None:
    occupant = occupant_id(stanza, ctx)
    common = {"stanza_id": stanza_id, "occupant_id": occupant}
    retract = stanza.find(q(RETRACT, "retract"))
    if retract is not None:
        target = retract.get("id")
        moderated = retract.find(q(MODERATE, "moderated"))
        reason = child_text(retract, RETRACT, "reason")
    else:
        apply_to = stanza.find(q(FASTEN, "apply-to"))
        if apply_to is None:
            return None
        target = apply_to.get("id")
        moderated = apply_to.find(q(MODERATE_0, "moderated"))
        if moderated is not None:
            reason = child_text(moderated, MODERATE_0, "reason")
        elif apply_to.find(q(RETRACT_0, "retract")) is not None:
            reason = None
        else:
            return None  # some other fastening
    if not target:
        raise MalformedStanza("retraction without the id it retracts")
    if moderated is None:
        if not nick:
            raise MalformedStanza("self-retraction not from an occupant")
        # The sender's real JID as for a correction: the model judges both by it where it is known (one rule),
        # so a newcomer in the author's freed nick retracts her message no more than he corrects it.
        by_jid = _sender_jid(stanza, nick, view, base["capture"], occupant)
        return ev.MessageRetracted(**base, target_id=target, by_nick=nick, by_jid=by_jid, **common)
    if nick:
        raise MalformedStanza("moderation must come from the room itself")
    by_nick, by_jid = _moderator(moderated, ctx)
    return ev.MessageRetracted(
        **base, target_id=target, moderated=True, by_nick=by_nick, by_jid=by_jid, reason=reason, **common
    )


_RETRACTED = (q(RETRACT, "retracted"), q(RETRACT_0, "retracted"))
_MODERATED = (q(MODERATE, "moderated"), q(MODERATE_0, "moderated"))
_REASONS = tuple(q(ns, "reason") for ns in (RETRACT, MODERATE, RETRACT_0, MODERATE_0))


def _first(element: Element | None, tags: tuple[str, ...]) -> Element | None:
    for tag in () if element is None else tags:
        found = element.find(tag)
        if found is not None:
            return found
    return None


def _tombstone_parts(stanza: Element) -> tuple[Element, Element | None] | None:
    """(``<retracted>``, ``<moderated>`` or None) of a tombstone, in each form servers write: XEP-0424's
    ``<retracted/>``; XEP-0425's ``<retracted><moderated/></retracted>``; mod_muc_moderation's
    ``<moderated><retracted/></moderated>``; each in the ``:1`` or the older ``:0`` namespaces."""
    retracted = _first(stanza, _RETRACTED)
    if retracted is not None:
        return retracted, _first(retracted, _MODERATED)
    moderated = _first(stanza, _MODERATED)
    retracted = _first(moderated, _RETRACTED)
    return None if retracted is None else (retracted, moderated)


def _tombstone(stanza, nick, ctx, view, base, stanza_id, retracted, moderated) -> list[ev.Event]:
    """A body-less message the room's archive (or its history, read from the archive) holds in place of one
    retracted or moderated (XEP-0424 §6, XEP-0425 §5): the post, whose text the archive did not keep, then its
    removal at the tombstone's stamp by whom it names. The removal is left out when the room's view knows it
    already (seen live, or read from an earlier tombstone): one moderation, one event, however often read.

    Only read from the archive: a live message claiming to be a tombstone is no post. The removal carries no
    stanza-id of its own (the tombstone's is the post's), so it is stored once by its content
    (``archive.codec.idempotency_key``) and never moves the catch-up's anchor (``RoomView``).
    """
    if not nick:
        return []  # the room itself speaking
    target = stanza_id or stanza.get("id")
    if not target:
        raise MalformedStanza("tombstone without an id")
    occupant = occupant_id(stanza, ctx)
    capture = base["capture"]
    jid = _sender_jid(stanza, nick, view, capture, occupant)
    post = ev.MessagePosted(
        **base, nick=nick, body="", body_kept=False, stanza_id=stanza_id, message_id=stanza.get("id"),
        origin_id=origin_id(stanza), jid=jid, occupant_id=occupant,
    )  # fmt: skip
    # Without a stamp the removal is dated with the message: not after it happened, and the same on every read.
    stamp = retracted.get("stamp")
    when = {**base, "occurred_at": parse_stamp(stamp) if stamp else base["occurred_at"]}
    reason = next((r.text or "" for element in (retracted, moderated) for r in [_first(element, _REASONS)] if r is not None), None)
    if moderated is None:
        removal = ev.MessageRetracted(**when, target_id=target, by_nick=nick, by_jid=jid, reason=reason, occupant_id=occupant)
    else:
        by_nick, by_jid = _moderator(moderated, ctx)
        removal = ev.MessageRetracted(
            **when, target_id=target, moderated=True, by_nick=by_nick, by_jid=by_jid, reason=reason,
            occupant_id=occupant_id(moderated, ctx),
        )  # fmt: skip
    return [post] if view.knows_removal(removal, post) else [post, removal]


def _moderator(moderated: Element, ctx: RoomContext) -> tuple[str | None, str | None]:
    """(nick, real JID) of the moderator a ``<moderated by=...>`` names: the occupant's JID in the room, or, on
    older servers, the moderator's real JID."""
    by = moderated.get("by")
    if not by:
        return None, None
    by_room, by_nick = split_jid(by)
    if by_room != ctx.room:
        return None, bare(by)
    return by_nick, None
