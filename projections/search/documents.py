"""Message documents: a message line (``projections.lines``) as the index keeps it.

The index holds one document per message line of the transcript (its ``key``
is the line's id, the log position of the post), made by the message model
(``projections.messages``) exactly as the transcript view makes it: current
text in ``body`` (a retracted message's in ``history``), earlier versions in
``history``, ``edited`` and ``retracted`` flags, every id the message is known by hashed in ``rhash``, and the line
itself (JSON, ``blob``, the only stored field) from which hits are made and
the model takes its next step. A line awaiting its message carries the
``awaiting`` flag; a retraction awaiting its message is a document marked
``meta`` = TOMB_MARK, which searches never match.
"""

from __future__ import annotations

import msgspec
import tantivy

from ..lines import Line, ids
from ..tables import order_micros
from .schema import FLAG_SET, bare_jid, room_terms, span_terms, span_unit

TOMB_MARK = 2  # ``meta`` of awaiting retractions; the position document has FLAG_SET (1)

encode_line = msgspec.json.Encoder().encode
decode_line = msgspec.json.Decoder(Line).decode


def to_tantivy(line: Line, blob: bytes) -> tantivy.Document:
    """The document of a message line (``blob``: ``encode_line(line)``), or of a retraction
    awaiting its message."""
    out = tantivy.Document()
    out.add_unsigned("key", line.id)
    out.add_text("blob", blob.decode())
    if line.awaiting:
        out.add_unsigned("awaiting", FLAG_SET)
    if line.kind != "message":
        out.add_unsigned("meta", TOMB_MARK)
        return out
    room, ref_hash = room_terms(line.room)
    ts = order_micros(line.at)
    out.add_integer("ts", ts)  # the room order: whole second, then key (position)
    out.add_text("span", span_terms(span_unit(ts)))
    # A retracted message's text is found only in compliance scope, as its earlier versions are: kept
    # out of ``body``, it needs no exclusion from the other searches (see ``Translator.needs_current_text``).
    out.add_text("body" if line.removed is None else "history", line.body or "")
    for earlier in line.versions:
        out.add_text("history", earlier.body)
    out.add_text("room", room)
    nick = line.nick or ""
    out.add_text("nick", nick)
    out.add_text("nick_lc", nick.lower())
    jid = bare_jid(line.jid)
    if jid:
        out.add_text("jid", jid)
    if line.thread:
        out.add_text("thread", line.thread)
    for ident in ids(line):
        out.add_unsigned("rhash", ref_hash(ident))
    if line.edited:
        out.add_unsigned("edited", FLAG_SET)
    if line.removed is not None:
        out.add_unsigned("retracted", FLAG_SET)
    return out


def line_of(document: tantivy.Document) -> Line:
    """The line a stored document was made of."""
    return decode_line(document.get_first("blob"))


def meta_document(position: int, version: int) -> tantivy.Document:
    out = tantivy.Document()
    out.add_unsigned("meta", FLAG_SET)
    out.add_unsigned("position", position)
    out.add_unsigned("version", version)
    return out
