"""Message documents: what the index keeps of a message, and how events change it.

Pure functions from archive events to ``MessageDoc`` and to and from tantivy
documents; the projection decides when to look up, add and replace.

Rules (the test oracle restates them independently):

- A message is one document; its ``key`` is the log position of the original.
  It is known in its room by each of its ids (stanza-id, message id, origin-id).
- A correction (XEP-0308) whose ``replaces_id`` is an id of a message in the
  same room, sent by the same occupant (same occupant-id when both carry one,
  else the same nick), replaces the text of the newest such message; the old
  text moves to ``history`` and the correction's own ids join the message's. A
  correction with no such message becomes a message of its own (marked edited)
  that is also known by ``replaces_id``; one by somebody else is indexed on its
  own as well, known only by its own ids.
- A retraction marks the newest message known by its ``target_id`` as retracted
  (a self-retraction only from its author). One that arrives before its message
  leaves a tombstone, and the message is retracted when it comes.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
import tantivy

from archive.events import MessageCorrected, MessagePosted, MessageRetracted
from archive.times import order_second

from .schema import CAPTURE_CODES, CAPTURES, FLAG_SET, bare_jid, ref_hash

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TOMB_MARK = 2  # ``meta`` of tombstones; the position document has FLAG_SET (1)


class MessageDoc(msgspec.Struct, kw_only=True, gc=False):  # no cycles: spare the collector
    key: int
    ts: int
    room: str
    nick: str
    body: str
    history: list[str] = []
    jid: str | None = None
    thread: str | None = None
    capture: str = "live"
    occupant_id: str | None = None
    refs: list[int] = []  # ref_hash of each id
    edited: bool = False
    retracted: bool = False


class Tombstone(msgspec.Struct, array_like=True, frozen=True):
    """A retraction waiting for its message."""

    moderated: bool
    by_nick: str | None
    occupant_id: str | None


_encode_tomb = msgspec.msgpack.Encoder().encode
_decode_tomb = msgspec.msgpack.Decoder(Tombstone).decode


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def own_refs(event: MessagePosted | MessageCorrected, room_lc: str) -> list[int]:
    ids: list[str] = []
    for ident in (event.stanza_id, event.message_id, event.origin_id):
        if ident and ident not in ids:
            ids.append(ident)
    return [ref_hash(room_lc, ident) for ident in ids]


def from_message(position: int, event: MessagePosted | MessageCorrected, *, edited: bool = False) -> MessageDoc:
    room = event.room.lower()
    return MessageDoc(
        key=position,
        ts=micros(order_second(event.occurred_at)),  # the room order: whole second, then key (position)
        room=room,
        nick=event.nick,
        body=event.body,
        jid=bare_jid(event.jid),
        thread=getattr(event, "thread", None),
        capture=event.capture.value,
        occupant_id=event.occupant_id,
        refs=own_refs(event, room),
        edited=edited,
    )


def same_sender(doc: MessageDoc, nick: str | None, occupant_id: str | None) -> bool:
    if doc.occupant_id and occupant_id:
        return doc.occupant_id == occupant_id
    return doc.nick == nick


def corrected(doc: MessageDoc, correction: MessageCorrected) -> MessageDoc:
    refs = doc.refs + [r for r in own_refs(correction, doc.room) if r not in doc.refs]
    return msgspec.structs.replace(
        doc, body=correction.body, history=doc.history + [doc.body], edited=True, refs=refs
    )


def may_retract(doc: MessageDoc, tomb: Tombstone) -> bool:
    """Moderators may retract anything; anybody else only their own messages."""
    if tomb.moderated:
        return True
    if doc.occupant_id and tomb.occupant_id:
        return doc.occupant_id == tomb.occupant_id
    return tomb.by_nick is None or tomb.by_nick == doc.nick


def tombstone_of(event: MessageRetracted) -> Tombstone:
    return Tombstone(event.moderated, event.by_nick, event.occupant_id)


def to_tantivy(doc: MessageDoc) -> tantivy.Document:
    out = tantivy.Document()
    out.add_unsigned("key", doc.key)
    out.add_integer("ts", doc.ts)
    out.add_text("body", doc.body)
    for earlier in doc.history:
        out.add_text("history", earlier)
    out.add_text("room", doc.room)
    out.add_text("nick", doc.nick)
    out.add_text("nick_lc", doc.nick.lower())
    out.add_unsigned("capture", CAPTURE_CODES[doc.capture])
    if doc.jid:
        out.add_text("jid", doc.jid)
    if doc.thread:
        out.add_text("thread", doc.thread)
    if doc.occupant_id:
        out.add_bytes("occupant", doc.occupant_id.encode())
    for ref in doc.refs:
        out.add_unsigned("rhash", ref)
    if doc.edited:
        out.add_unsigned("edited", FLAG_SET)
    if doc.retracted:
        out.add_unsigned("retracted", FLAG_SET)
    return out


def from_tantivy(stored: dict) -> MessageDoc:
    """A MessageDoc from a stored document's ``to_dict()``."""
    return MessageDoc(
        key=stored["key"][0],
        ts=stored["ts"][0],
        room=stored["room"][0],
        nick=stored["nick"][0],
        body=stored["body"][0],
        history=list(stored.get("history", [])),
        jid=_first(stored, "jid"),
        thread=_first(stored, "thread"),
        capture=capture_name(stored["capture"][0]),
        occupant_id=bytes(stored["occupant"][0]).decode() if stored.get("occupant") else None,
        refs=list(stored.get("rhash", [])),
        edited=bool(stored.get("edited")),
        retracted=bool(stored.get("retracted")),
    )


def capture_name(code: int) -> str:
    return CAPTURES[code] if code < len(CAPTURES) else "unknown"


def meta_document(position: int, version: int) -> tantivy.Document:
    out = tantivy.Document()
    out.add_unsigned("meta", FLAG_SET)
    out.add_unsigned("position", position)
    out.add_unsigned("version", version)
    return out


def tomb_document(ref: int, tomb: Tombstone) -> tantivy.Document:
    out = tantivy.Document()
    out.add_unsigned("meta", TOMB_MARK)
    out.add_unsigned("tomb", ref)
    out.add_bytes("blob", _encode_tomb(tomb))
    return out


def tomb_from_tantivy(stored: dict) -> tuple[int, Tombstone]:
    return stored["tomb"][0], _decode_tomb(bytes(stored["blob"][0]))


def _first(stored: dict, name: str):
    values = stored.get(name)
    return values[0] if values else None
