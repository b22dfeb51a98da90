"""Message documents: a message line (``projections.lines``) as the index keeps it.

The index holds one document per message line of the transcript (its ``key``
is the line's id, the log position of the post), made by the message model
(``projections.messages``) exactly as the transcript view makes it: current
text in ``body``, earlier versions in ``history``, ``edited`` and ``retracted``
flags, every id the message is known by hashed in ``rhash``, and the line
itself (msgpack, ``blob``) for the model's next step. A line awaiting its
message carries the hash of the id it awaits (``tomb``) and the ``awaiting``
flag; a retraction awaiting its message is a document marked ``meta`` =
TOMB_MARK, which searches never match.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
import tantivy

from archive.times import order_second

from ..lines import Line, ids
from .schema import CAPTURE_CODES, CAPTURES, FLAG_SET, bare_jid, ref_hash

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TOMB_MARK = 2  # ``meta`` of awaiting retractions; the position document has FLAG_SET (1)

_encode_line = msgspec.msgpack.Encoder().encode
_decode_line = msgspec.msgpack.Decoder(Line).decode


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_tantivy(line: Line) -> tantivy.Document:
    """The document of a message line, or of a retraction awaiting its message."""
    out = tantivy.Document()
    out.add_unsigned("key", line.id)
    out.add_bytes("blob", _encode_line(line))
    room = line.room.lower()
    if line.awaiting:
        out.add_unsigned("tomb", ref_hash(room, line.awaiting))
        out.add_unsigned("awaiting", FLAG_SET)
    if line.kind != "message":
        out.add_unsigned("meta", TOMB_MARK)
        return out
    out.add_integer("ts", micros(order_second(line.at)))  # the room order: whole second, then key (position)
    out.add_text("body", line.body or "")
    for earlier in line.versions:
        out.add_text("history", earlier.body)
    out.add_text("room", room)
    out.add_text("nick", line.nick or "")
    out.add_text("nick_lc", (line.nick or "").lower())
    out.add_unsigned("capture", CAPTURE_CODES[line.capture or "live"])
    jid = bare_jid(line.jid)
    if jid:
        out.add_text("jid", jid)
    if line.thread:
        out.add_text("thread", line.thread)
    if line.occupant_id:
        out.add_bytes("occupant", line.occupant_id.encode())
    for ref in line_refs(line):
        out.add_unsigned("rhash", ref)
    if line.edited:
        out.add_unsigned("edited", FLAG_SET)
    if line.removed is not None:
        out.add_unsigned("retracted", FLAG_SET)
    return out


def line_refs(line: Line) -> list[int]:
    room = line.room.lower()
    return [ref_hash(room, ident) for ident in ids(line)]


def line_of(stored: dict) -> Line:
    """The line of a stored document's ``to_dict()``."""
    return _decode_line(bytes(stored["blob"][0]))


def capture_name(code: int) -> str:
    return CAPTURES[code] if code < len(CAPTURES) else "unknown"


def meta_document(position: int, version: int) -> tantivy.Document:
    out = tantivy.Document()
    out.add_unsigned("meta", FLAG_SET)
    out.add_unsigned("position", position)
    out.add_unsigned("version", version)
    return out
