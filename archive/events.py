"""The archive's single event schema: msgspec Structs in one tagged union.

The same Structs are stored (msgpack), replayed and served by the API (JSON).
Every event names its room, when it happened by the server's clock where that is
known (``occurred_at``), when the archive recorded it (``recorded_at``) and how
it was captured.

Schema evolution rules (stored events are immutable, so the schema only grows):

1. Never rename or remove a field, never change its type, never reuse a tag.
2. A new field is appended with a default (usually ``None``), so events stored
   before it existed still decode.
3. A new event type gets a new tag; readers that do not know a tag reject it
   with ``EventDecodeError`` rather than guess.
4. An enum may gain members, never lose them.
"""

from __future__ import annotations

import unicodedata
from typing import Union

import msgspec

# This module is the schema's one entry point: the room events and the archive's own records, their union.
from .records import (
    COMPLIANCE_STREAM,
    AUDIT_STREAM,
    SYSTEM_STREAMS,
    copied_trail,
    trail_origin,
    is_audit_trail,
    MAX_NUMBER,
    Version,
    Link,
    ChainHead,
    PurgedSpan,
    ChainCheckpoint,
    LegalHoldPlaced,
    LegalHoldReleased,
    EventsPurged,
    PurgeApplied,
    ContentRead,
    COMPLIANCE_KINDS,
)
from .room_events import (
    UtcTime,
    Capture,
    LeaveReason,
    GapKind,
    Event,
    RoomDiscovered,
    RoomCreated,
    OccupantJoined,
    OccupantLeft,
    PresenceChanged,
    NickChanged,
    RoleChanged,
    AffiliationChanged,
    SubjectChanged,
    MessagePosted,
    MessageCorrected,
    MessageRetracted,
    RoomDestroyed,
    ArchiveGap,
    FirstJoinCompleted,
)


# Every kind of event is a tagged subclass of Event, defined by the modules imported above (room events first,
# then the archive's records): their union, in that order, without a third list of their names.
ArchiveEvent = Union[tuple(Event.__subclasses__())]  # type: ignore[misc]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls for cls in ArchiveEvent.__args__  # type: ignore[attr-defined]
}


class Recorded(msgspec.Struct, frozen=True, gc=False):  # gc=False: see Event
    """An event with its position in the global log (strictly increasing; not gapless)."""

    position: int
    event: ArchiveEvent


def room_problem(room: str) -> str | None:
    """Why ``room`` cannot name a room (None: it can). A room is a bare JID, ``name@service``, as the listener
    records it: no resource, no whitespace, no control or format characters (no JID holds them, and a line break
    in a room's name would break every line and header it is written into: transcripts, export headers, logs)."""
    local, _, service = room.partition("@")
    if not local or not service or "@" in service or "/" in room:
        return f"{room!r} is not a room's JID (name@service, no resource)"
    odd = next((c for c in room if c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")), None)
    if odd is not None:
        return f"{room!r} is not a room's JID: it holds the character {odd!r}"
    return None


def misplaced(event: Event) -> str | None:
    """Why the log cannot hold ``event`` in the stream it names (None: it can): a room's events go to a room
    (never into the archive's own streams), the compliance records to the compliance stream, and audit records
    to the audit trail, which is kept beside the log, not in it."""
    if isinstance(event, ContentRead):
        return "an audit record (content_read) belongs to the audit trail, not the event log"
    tag = event.__struct_config__.tag
    if isinstance(event, COMPLIANCE_KINDS):
        if event.room != COMPLIANCE_STREAM:
            return f"a {tag} record belongs to the stream {COMPLIANCE_STREAM}, not {event.room!r}"
        return None
    problem = room_problem(event.room)
    return f"a {tag} event names a room: {problem}" if problem else None


__all__ = [
    "COMPLIANCE_STREAM",
    "AUDIT_STREAM",
    "SYSTEM_STREAMS",
    "copied_trail",
    "trail_origin",
    "is_audit_trail",
    "MAX_NUMBER",
    "Version",
    "Link",
    "ChainHead",
    "PurgedSpan",
    "ChainCheckpoint",
    "LegalHoldPlaced",
    "LegalHoldReleased",
    "EventsPurged",
    "PurgeApplied",
    "ContentRead",
    "COMPLIANCE_KINDS",
    "UtcTime",
    "Capture",
    "LeaveReason",
    "GapKind",
    "Event",
    "RoomDiscovered",
    "RoomCreated",
    "OccupantJoined",
    "OccupantLeft",
    "PresenceChanged",
    "NickChanged",
    "RoleChanged",
    "AffiliationChanged",
    "SubjectChanged",
    "MessagePosted",
    "MessageCorrected",
    "MessageRetracted",
    "RoomDestroyed",
    "ArchiveGap",
    "FirstJoinCompleted",
    "ArchiveEvent",
    "EVENT_TYPES",
    "Recorded",
    "room_problem",
    "misplaced",
]
