"""Namespaces and small readers of stanza XML (``xml.etree`` elements, as slixmpp holds them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from xml.etree.ElementTree import Element

CLIENT = "jabber:client"
MUC_USER = "http://jabber.org/protocol/muc#user"
DELAY = "urn:xmpp:delay"
SID = "urn:xmpp:sid:0"
CORRECT = "urn:xmpp:message-correct:0"
RETRACT = "urn:xmpp:message-retract:1"
RETRACT_0 = "urn:xmpp:message-retract:0"
FASTEN = "urn:xmpp:fasten:0"
MODERATE = "urn:xmpp:message-moderate:1"
MODERATE_0 = "urn:xmpp:message-moderate:0"
OCCUPANT_ID = "urn:xmpp:occupant-id:0"
MAM = "urn:xmpp:mam:2"
FORWARD = "urn:xmpp:forward:0"
RSM = "http://jabber.org/protocol/rsm"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class MalformedStanza(ValueError):
    """A stanza that violates the XEPs it claims to follow."""


@dataclass(frozen=True)
class RoomContext:
    """What the translator must know about the room besides its view.

    ``trust_stanza_id`` / ``trust_occupant_id``: the room advertises
    ``urn:xmpp:sid:0`` / ``urn:xmpp:occupant-id:0``; otherwise such elements may
    have been forged by the sender (XEP-0359 §4, XEP-0421 §4) and are ignored.
    """

    room: str
    own_nick: str
    trust_stanza_id: bool = True
    trust_occupant_id: bool = True


def q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def split_jid(jid: str | None) -> tuple[str, str | None]:
    """(lower-cased bare JID, resource or None)."""
    if not jid:
        raise MalformedStanza("stanza without a 'from' address")
    bare, sep, resource = jid.partition("/")
    return bare.lower(), (resource if sep else None)


def child_text(element: Element, ns: str, tag: str) -> str | None:
    child = element.find(q(ns, tag))
    return None if child is None else (child.text or "")


def parse_stamp(stamp: str | None) -> datetime:
    """An XEP-0082 DateTime as an aware UTC datetime."""
    if not stamp:
        raise MalformedStanza("delay without a stamp")
    try:
        moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise MalformedStanza(f"bad time stamp {stamp!r}") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def room_delay(stanza: Element, room: str) -> datetime | None:
    """The delay stamp the room itself put on replayed history (XEP-0045 §7.2.15)."""
    for delay in stanza.findall(q(DELAY, "delay")):
        if (delay.get("from") or "").lower() == room:
            return parse_stamp(delay.get("stamp"))
    return None


def room_stanza_id(stanza: Element, ctx: RoomContext) -> str | None:
    """The room's XEP-0359 stanza-id: only one whose ``by`` is the room counts."""
    if not ctx.trust_stanza_id:
        return None
    for sid in stanza.findall(q(SID, "stanza-id")):
        if (sid.get("by") or "").lower() == ctx.room and sid.get("id"):
            return sid.get("id")
    return None


def origin_id(stanza: Element) -> str | None:
    element = stanza.find(q(SID, "origin-id"))
    return None if element is None else element.get("id")


def occupant_id(element: Element, ctx: RoomContext) -> str | None:
    if not ctx.trust_occupant_id:
        return None
    found = element.find(q(OCCUPANT_ID, "occupant-id"))
    return None if found is None else found.get("id")


def muc_user(stanza: Element) -> Element | None:
    return stanza.find(q(MUC_USER, "x"))


def status_codes(x: Element) -> set[int]:
    codes = set()
    for status in x.findall(q(MUC_USER, "status")):
        try:
            codes.add(int(status.get("code", "")))
        except ValueError:
            raise MalformedStanza(f"bad status code {status.get('code')!r}") from None
    return codes


def actor_of(item: Element | None) -> str | None:
    if item is None:
        return None
    actor = item.find(q(MUC_USER, "actor"))
    if actor is None:
        return None
    return actor.get("nick") or actor.get("jid")


def bare(jid: str | None) -> str | None:
    return jid.partition("/")[0] if jid else None
