"""Message documents: a message line (``projections.lines``) as the index keeps it.

The index holds one document per message line of the transcript (its ``key``
is the line's id, the log position of the post), made by the message model
(``projections.messages``) exactly as the transcript view makes it: current
text in ``body`` (a retracted message's in ``history``), earlier versions in
``history``, ``edited`` and ``retracted`` flags, every id the message is known by hashed in ``rhash``, and the line
itself (JSON, ``blob``, the only stored field: ``StoredLine``) from which hits are made and
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


class StoredLine(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What ``blob`` holds (since schema 7): a line, behind what a search hit shows of it that the line holds only
    in another form, made once when indexed (from what the document's fields need anyway) instead of for every
    hit: ``time``, the room order's whole second (``order_second``: ~4.5k instructions a hit, a fifth of reading
    its line) in seconds since the epoch, and ``jid``, the bare JID. A JSON array: ``storedlines`` decodes the
    line's shown fields behind them in the same call."""

    time: int
    jid: str | None
    line: Line


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(StoredLine).decode


def stored(ts: int, jid: str | None, line: Line) -> bytes:
    """``line`` as ``blob`` stores it (``StoredLine``), its ``ts`` (``order_micros``) and bare JID made."""
    return _encode((ts // 1_000_000, jid, line))


def decode_line(blob: bytes | str) -> Line:
    """The line ``stored`` stored."""
    return _decode(blob).line


def to_tantivy(line: Line) -> tuple[tantivy.Document, bytes]:
    """The document of a message line, or of a retraction awaiting its message, and its ``blob``."""
    out = tantivy.Document()
    out.add_unsigned("key", line.id)
    ts, jid = order_micros(line.at), bare_jid(line.jid)
    blob = stored(ts, jid, line)
    out.add_text("blob", blob.decode())
    if line.awaiting:
        out.add_unsigned("awaiting", FLAG_SET)
    if line.kind != "message":
        out.add_unsigned("meta", TOMB_MARK)
        return out, blob
    room, ref_hash = room_terms(line.room)
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
    return out, blob


def line_of(document: tantivy.Document) -> Line:
    """The line a stored document was made of."""
    return decode_line(document.get_first("blob"))


def meta_document(position: int, version: int) -> tantivy.Document:
    out = tantivy.Document()
    out.add_unsigned("meta", FLAG_SET)
    out.add_unsigned("position", position)
    out.add_unsigned("version", version)
    return out
