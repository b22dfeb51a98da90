"""Transcript logic: pure functions from events to transcript lines.

A line is created by one event (its ``id`` is that event's global position) and
placed at the event's ``occurred_at``. Message lines change as the message
model (``projections.messages``) says; nothing else changes a line.

The same functions drive the SQL projection (``view``) and the point-in-time
reconstruction (``projections.pointintime``), each through its own ``Book``.
"""

from __future__ import annotations

from collections.abc import Callable

from archive import events as ev

from .. import messages
from ..lines import Line
from ..messages import Book, Changes


def step(position: int, event: ev.Event, book: Book) -> Changes:
    """What one event does to the transcript."""
    maker = _MAKERS.get(type(event))
    if maker is not None:
        return Changes([maker(position, event)], [])
    return messages.step(position, event, book)


_LIVE = ev.Capture.LIVE


def _capture(event: ev.Event) -> str | None:
    capture = event.capture
    return None if capture is _LIVE else capture.value


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
        reason=e.explanation or None, gap_recovered=e.recovered, gap_verified=e.verified,
    )


_MAKERS: dict[type, Callable[[int, ev.Event], Line]] = {
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
