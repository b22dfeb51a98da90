"""Transcript logic: pure functions from events to transcript lines.

A line is created by one event (its ``id`` is that event's global position) and
placed at the event's ``occurred_at``. Message lines later change when a
correction or retraction resolves to them; nothing else changes a line.

- Corrections (XEP-0308) name the original's ``id`` attribute (``message_id``);
  clients that put the origin-id there are served too. The correction must come
  from the original's sender (same occupant-id, else same real JID, else same
  nick); otherwise, or when the original is unknown, it becomes a line of its
  own with ``corrects`` set.
- Retractions and moderations name the stanza-id (tried first), the origin-id
  or, as a last resort, the ``id`` attribute. A self-retraction (not moderated)
  counts only from the author (occupant-id, else real JID, else nick). Where several messages of a room
  carry the same id (clients reuse them), the latest one is meant. One whose target is not (yet)
  archived is kept pending and applied when the target arrives (backfill).

The same functions drive the SQL projection (``view``) and the point-in-time
reconstruction (``projections.pointintime``), through a ``find`` callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import msgspec

from archive import events as ev

UtcTime = ev.UtcTime


class Version(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An earlier text of a corrected message (compliance view only)."""

    body: str
    at: UtcTime
    position: int


class Removal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who removed a message, when and why: the tombstone's content."""

    at: UtcTime
    position: int
    moderated: bool = False
    by_nick: str | None = None
    by_jid: str | None = None
    reason: str | None = None


class Line(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One transcript line.

    ``kind``: message, joined, left (``leave_reason``: left, kicked, banned,
    removed, room_destroyed, shutdown, lost_sight), nick_changed,
    subject_changed (``body`` is the subject), role_changed,
    affiliation_changed, room_created, room_destroyed, gap (from ``at`` to
    ``gap_end``).

    A removed message has ``removed`` set; the ordinary view serves it with
    ``body`` None (a tombstone), the compliance view with the original text.
    ``versions`` (compliance view only) holds earlier texts, oldest first.
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
    corrects: str | None = None  # a correction whose original is unknown
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


# find(room, ref_kind, ref) -> the latest line whose stanza_id ("s"), origin_id
# ("o") or message_id ("m") is ref, or None.
Find = Callable[[str, str, str], "Line | None"]

CORRECTION_REFS = ("m", "o")
RETRACTION_REFS = ("s", "o", "m")


def refs(line: Line) -> list[tuple[str, str]]:
    """The (kind, id) references a message line can be found by."""
    found = []
    if line.stanza_id:
        found.append(("s", line.stanza_id))
    if line.origin_id:
        found.append(("o", line.origin_id))
    if line.message_id:
        found.append(("m", line.message_id))
    return found


def resolve(find: Find, room: str, ref: str, kinds: tuple[str, ...]) -> Line | None:
    for kind in kinds:
        line = find(room, kind, ref)
        if line is not None:
            return line
    return None


class Outcome(NamedTuple):
    lines: list[Line]  # lines created or changed by the event
    pending: ev.MessageRetracted | None  # a retraction whose target is not archived (yet)


def step(position: int, event: ev.Event, find: Find) -> Outcome:
    """What one event does to the transcript, given the lines found so far."""
    kind = type(event)
    maker = _MAKERS.get(kind)
    if maker is not None:
        return Outcome([maker(position, event)], None)
    if kind is ev.MessageCorrected:
        target = resolve(find, event.room, event.replaces_id, CORRECTION_REFS)
        if target is not None and same_sender(target, event):
            return Outcome([correct(target, event, position)], None)
        return Outcome([correction_line(position, event)], None)
    if kind is ev.MessageRetracted:
        target = resolve(find, event.room, event.target_id, RETRACTION_REFS)
        if target is None:
            return Outcome([], event)
        return Outcome([retract(target, event, position)], None)
    return Outcome([], None)


def apply_pending(line: Line, pending: dict[tuple[str, str], list[tuple[int, ev.MessageRetracted]]]) -> Line:
    """``line`` with the pending retractions aimed at it applied; those are taken out of ``pending``."""
    for _, ref in refs(line):
        for position, retraction in pending.pop((line.room, ref), ()):
            line = retract(line, retraction, position)
    return line


def new_line(position: int, event: ev.Event) -> Line | None:
    """The line an event adds by itself, or None (corrections and retractions
    change other lines; presence and discovery events add none)."""
    maker = _MAKERS.get(type(event))
    return maker(position, event) if maker else None


def correct(line: Line, event: ev.MessageCorrected, position: int) -> Line:
    """``line`` showing the corrected text; the text it showed becomes a version."""
    previous = Version(body=line.body or "", at=line.edited_at or line.at, position=line.edit_position or line.id)
    return msgspec.structs.replace(
        line,
        body=event.body,
        edited=True,
        edited_at=event.occurred_at,
        edit_position=position,
        versions=(*line.versions, previous),
    )


def retract(line: Line, event: ev.MessageRetracted, position: int) -> Line:
    """``line`` removed (the first removal is the one kept); a self-retraction
    by someone other than the author changes nothing."""
    if line.removed is not None or not may_retract(line, event):
        return line
    removal = Removal(
        at=event.occurred_at,
        position=position,
        moderated=event.moderated,
        by_nick=event.by_nick,
        by_jid=event.by_jid,
        reason=event.reason,
    )
    return msgspec.structs.replace(line, removed=removal)


def may_retract(line: Line, event: ev.MessageRetracted) -> bool:
    """Moderators may remove any message; authors only their own (XEP-0424)."""
    if event.moderated:
        return True
    if line.occupant_id and event.occupant_id:
        return line.occupant_id == event.occupant_id
    if line.jid and event.by_jid:
        return _bare(line.jid) == _bare(event.by_jid)
    if line.nick and event.by_nick:
        return line.nick == event.by_nick
    return True


def _bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def same_sender(line: Line, event: ev.MessageCorrected) -> bool:
    if line.occupant_id and event.occupant_id:
        return line.occupant_id == event.occupant_id
    if line.jid and event.jid:
        return line.jid == event.jid
    return line.nick == event.nick


def correction_line(position: int, event: ev.MessageCorrected) -> Line:
    """A correction nobody can place: shown as a message of its own."""
    return _message_line(position, event, edited=True, edited_at=event.occurred_at, corrects=event.replaces_id)


def ordinary(line: Line) -> Line:
    """The line as the ordinary view shows it: removed text and old versions hidden."""
    if line.removed is not None:
        return msgspec.structs.replace(line, body=None, versions=())
    if line.versions:
        return msgspec.structs.replace(line, versions=())
    return line


_LIVE = ev.Capture.LIVE


def _capture(event: ev.Event) -> str | None:
    capture = event.capture
    return None if capture is _LIVE else capture.value


def _message(position: int, e: ev.MessagePosted) -> Line:
    return _message_line(position, e, thread=e.thread)


def _message_line(position: int, e: ev.MessagePosted | ev.MessageCorrected, **extra) -> Line:
    capture = e.capture
    return Line(
        id=position,
        room=e.room,
        at=e.occurred_at,
        kind="message",
        nick=e.nick,
        jid=e.jid,
        occupant_id=e.occupant_id,
        body=e.body,
        stanza_id=e.stanza_id,
        origin_id=e.origin_id,
        message_id=e.message_id,
        capture=None if capture is _LIVE else capture.value,
        **extra,
    )


def _joined(position: int, e: ev.OccupantJoined) -> Line:
    return Line(
        id=position, room=e.room, at=e.occurred_at, kind="joined", nick=e.nick, jid=e.jid,
        occupant_id=e.occupant_id, role=e.role, affiliation=e.affiliation, status=e.status,
        capture=_capture(e),
    )


def _left(position: int, e: ev.OccupantLeft) -> Line:
    return Line(
        id=position, room=e.room, at=e.occurred_at, kind="left", nick=e.nick, jid=e.jid,
        occupant_id=e.occupant_id, leave_reason=e.reason.value, actor=e.actor, reason=e.reason_text,
        status=e.status, capture=_capture(e),
    )


def _nick(position: int, e: ev.NickChanged) -> Line:
    return Line(
        id=position, room=e.room, at=e.occurred_at, kind="nick_changed", nick=e.new_nick, jid=e.jid,
        occupant_id=e.occupant_id, old_nick=e.old_nick, new_nick=e.new_nick, capture=_capture(e),
    )


def _subject(position: int, e: ev.SubjectChanged) -> Line:
    return Line(
        id=position, room=e.room, at=e.occurred_at, kind="subject_changed", nick=e.nick, body=e.subject,
        capture=_capture(e),
    )


def _role(position: int, e: ev.RoleChanged) -> Line:
    return Line(
        id=position, room=e.room, at=e.occurred_at, kind="role_changed", nick=e.nick, jid=e.jid,
        occupant_id=e.occupant_id, role=e.role, actor=e.actor, reason=e.reason_text, capture=_capture(e),
    )


def _affiliation(position: int, e: ev.AffiliationChanged) -> Line:
    return Line(
        id=position, room=e.room, at=e.occurred_at, kind="affiliation_changed", nick=e.nick, jid=e.jid,
        occupant_id=e.occupant_id, affiliation=e.affiliation, actor=e.actor, reason=e.reason_text,
        capture=_capture(e),
    )


def _created(position: int, e: ev.RoomCreated) -> Line:
    return Line(id=position, room=e.room, at=e.occurred_at, kind="room_created", body=e.name)


def _destroyed(position: int, e: ev.RoomDestroyed) -> Line:
    return Line(
        id=position, room=e.room, at=e.occurred_at, kind="room_destroyed", reason=e.reason, actor=e.actor,
        body=e.alternate_room,
    )


def _gap(position: int, e: ev.ArchiveGap) -> Line:
    return Line(
        id=position, room=e.room, at=e.gap_start, kind="gap", gap_end=e.gap_end, gap_kind=e.kind.value,
        reason=e.explanation or None,
    )


_MAKERS: dict[type, Callable[[int, ev.Event], Line]] = {
    ev.MessagePosted: _message,
    ev.OccupantJoined: _joined,
    ev.OccupantLeft: _left,
    ev.NickChanged: _nick,
    ev.SubjectChanged: _subject,
    ev.RoleChanged: _role,
    ev.AffiliationChanged: _affiliation,
    ev.RoomCreated: _created,
    ev.RoomDestroyed: _destroyed,
    ev.ArchiveGap: _gap,
}
