"""The transcript line: what every view that shows a room's history is made of.

One Struct for the transcript view, the search index's stored documents, the
widget, ``/state`` and the exports' links between events; ``projections.messages``
decides how message lines change.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from archive import events as ev

from .columns import MsgpackColumn

UtcTime = ev.UtcTime


class Version(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """An earlier text of a corrected message (compliance view only): the text, and when, by which event
    (``position``) and how (``capture``, as ``Line.capture``) it was set."""

    body: str
    at: UtcTime
    position: int
    # Added after ``position``: a version stored before reads None (live); a start rebuilds such a view (its rules
    # are older: ``TranscriptProjection.rules``).
    capture: str | None = None


class Removal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Who removed a message, when and why: the tombstone's content."""

    at: UtcTime
    position: int
    moderated: bool = False
    by_nick: str | None = None
    by_jid: str | None = None
    reason: str | None = None
    # How the retraction was captured (as ``Line.capture``): an imported or backfilled moderation is evidence of
    # another kind than one the listener saw. A removal stored before it was added reads None (rebuilt, as a
    # ``Version``'s).
    capture: str | None = None


class Line(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One transcript line.

    ``kind``: message, joined, left (``leave_reason``: left, kicked, banned,
    removed, room_destroyed, shutdown, lost_sight), nick_changed,
    subject_changed (``body`` is the subject), role_changed,
    affiliation_changed, room_created, room_destroyed, gap (from ``at`` to
    ``gap_end``), retraction (compliance view only: a retraction or moderation
    whose message is not archived, ``removed`` says who and why).

    A removed message has ``removed`` set; the ordinary view serves it with
    ``body`` None (a tombstone), the compliance view with the original text.
    ``versions`` (compliance view only) holds earlier texts, oldest first; ``capture``
    says how the event that made the line was captured, ``edit_capture`` the current text's
    correction, each version's and the removal's their own.
    ``aliases`` are the ids of the corrections applied to a message, by which
    later corrections and retractions may name it too; ``stanza_aliases`` those
    of them the room gave (the corrections' stanza-ids: the message owns them as
    it owns its own, ``messages.owned``). ``awaiting`` is set on a correction or
    retraction whose message is not archived (yet), or a retraction waiting for
    the message the room gave the id it names: the id it names.
    """

    id: int
    room: str
    at: UtcTime
    kind: str
    nick: str | None = None
    jid: str | None = None
    occupant_id: str | None = None
    body: str | None = None
    stanza_id: str | None = None
    origin_id: str | None = None
    message_id: str | None = None
    thread: str | None = None
    capture: str | None = None  # "history" | "backfill" | "import"; None for live
    edited: bool = False
    edited_at: UtcTime | None = None
    edit_position: int | None = None  # the correction that set the current text
    versions: tuple[Version, ...] = ()
    removed: Removal | None = None
    corrects: str | None = None  # a correction not applied to a message (unknown, or not the author's)
    leave_reason: str | None = None
    reason: str | None = None
    actor: str | None = None
    status: str | None = None
    old_nick: str | None = None
    new_nick: str | None = None
    role: str | None = None
    affiliation: str | None = None
    gap_end: UtcTime | None = None
    gap_kind: str | None = None
    aliases: tuple[str, ...] = ()
    awaiting: str | None = None
    edit_capture: str | None = None  # how the correction that set the current text was captured (``edit_position``)
    gap_recovered: int | None = None  # a gap: messages of its span fetched afterwards (``ArchiveGap.recovered``)
    gap_verified: bool = False  # a gap: the room's archive was read over its span, every message it holds archived
    stanza_aliases: tuple[str, ...] = ()  # the stanza-ids of the corrections applied (all among ``ids``)


# A line as the transcript view stores it: its fields in ``Line``'s order, without their names (msgpack
# maps spent a fifth of a stored line's bytes on them, written and read again by every rebuild and
# query). Fields are only ever added at the end, with defaults: a stored line made before one was added
# decodes with the default.
_StoredLine = msgspec.defstruct(
    "_StoredLine",
    [(f.name, f.type, msgspec.field(default=f.default, default_factory=f.default_factory))
     for f in msgspec.structs.fields(Line)],
    array_like=True, frozen=True, gc=False,
)
_astuple = msgspec.structs.astuple
_encode_fields_into = msgspec.msgpack.Encoder().encode_into
_decode_fields = msgspec.msgpack.Decoder(_StoredLine).decode


def stored(lines: Sequence[Line]) -> MsgpackColumn:
    """``lines`` as the transcript view stores them (``from_stored`` reads them back), each a msgpack value:
    encoded as arrays of them (msgspec growing a buffer for each line by itself was 3.5% of a rebuild's main
    process, and the pipe to its writer process copied each blob again), of ``STORED_ARRAY`` lines each."""
    arrays = []
    encoding = bytearray()  # kept from one array to the next: not grown (copied) again for each
    for start in range(0, len(lines), STORED_ARRAY):
        _encode_fields_into(list(map(_astuple, lines[start:start + STORED_ARRAY])), encoding)
        arrays.append(bytes(encoding))
    return MsgpackColumn(arrays, len(lines))


# Lines an array holds (~16 KB), their tuples freed before the next array's are made. Arrays of more took
# fresh pages from the system for each commit: a 1M-event rebuild's main process (PostgreSQL, commits of
# 100k) had 162-164k page faults before arrays, 248-262k with arrays of 1,024 lines, 241k of 256, 170k of 64.
STORED_ARRAY = 64


def from_stored(data: bytes) -> Line:
    return Line(*_astuple(_decode_fields(data)))


def ids(line: Line) -> list[str]:
    """Every id a message line can be named by: its own stanza-id, origin-id and
    ``id`` attribute, those of the corrections applied to it, and (for a correction
    awaiting its message) the id it awaits, which later corrections name too (XEP-0308)."""
    waiting = line.awaiting if line.kind == "message" else None
    if line.aliases or waiting:
        candidates = (line.stanza_id, line.origin_id, line.message_id, *line.aliases, waiting)
        return list(dict.fromkeys(ident for ident in candidates if ident))  # in order, each once
    # Nearly every line: its own ids only (this runs for every line a view writes).
    stanza_id, origin_id, message_id = line.stanza_id, line.origin_id, line.message_id
    found = [stanza_id] if stanza_id else []
    if origin_id and origin_id != stanza_id:
        found.append(origin_id)
    if message_id and message_id != stanza_id and message_id != origin_id:
        found.append(message_id)
    return found


def text_capture(line: Line) -> str | None:
    """How the event that set a message line's current text was captured: its correction's, or the line's own."""
    return line.edit_capture if line.edit_position is not None else line.capture


def as_at(line: Line, moment) -> Line:
    """``line`` (with its versions) as it read at ``moment``: corrections and removal made
    later undone."""
    later_edit = line.edited_at is not None and line.edited_at >= moment and line.versions
    later_removal = line.removed is not None and line.removed.at >= moment
    if not (later_edit or later_removal):
        return line
    changes: dict = {"removed": None} if later_removal else {}
    if later_edit:
        texts = [(v.body, v.at, v.position, v.capture) for v in line.versions]
        texts.append((line.body, line.edited_at, line.edit_position, line.edit_capture))
        kept = [text for text in texts if text[1] < moment] or texts[:1]
        body, at, position, capture = kept[-1]
        edited = len(kept) > 1 or line.corrects is not None
        changes.update(
            body=body, versions=line.versions[: len(kept) - 1], edited=edited,
            edited_at=at if edited else None, edit_position=position if len(kept) > 1 else None,
            edit_capture=capture if len(kept) > 1 else None,
        )  # fmt: skip
    return msgspec.structs.replace(line, **changes)


COMPLIANCE_ONLY_KINDS = frozenset({"retraction"})  # the kinds of line the ordinary view never shows


def compliance_only(line: Line) -> bool:
    """Lines the ordinary view never shows."""
    return line.kind in COMPLIANCE_ONLY_KINDS


def ordinary(line: Line) -> Line:
    """The line as the ordinary view shows it: removed text and old versions hidden."""
    if line.removed is not None:
        return msgspec.structs.replace(line, body=None, versions=())
    if line.versions:
        return msgspec.structs.replace(line, versions=())
    return line


def shown(lines: list[Line], include_originals: bool) -> list[Line]:
    """``lines`` as the compliance view (``include_originals``) or the ordinary view shows them."""
    if include_originals:
        return lines
    return [ordinary(line) for line in lines if not compliance_only(line)]
