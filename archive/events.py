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

import enum
import unicodedata
from datetime import datetime
from typing import Annotated, Union

import msgspec

UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]


class Capture(str, enum.Enum):
    """How an event reached the archive."""

    LIVE = "live"
    HISTORY = "history"  # discussion history replayed by the room on join
    BACKFILL = "backfill"  # fetched from the room's MAM archive after a gap
    IMPORT = "import"  # imported from a whole MAM archive or a log file


class LeaveReason(str, enum.Enum):
    """Why an occupant stopped being in a room."""

    LEFT = "left"
    KICKED = "kicked"  # status 307
    BANNED = "banned"  # status 301
    REMOVED = "removed"  # status 321 (affiliation change) or 322 (members-only)
    ROOM_DESTROYED = "room_destroyed"
    SHUTDOWN = "shutdown"  # status 332: the service went down
    LOST_SIGHT = "lost_sight"  # the listener lost its connection to the room


class GapKind(str, enum.Enum):
    """What an archive gap may be missing."""

    PRESENCE = "presence"  # messages were recovered, presence was not
    MESSAGES = "messages"  # the room serves no MAM: messages may be missing too
    ALL = "all"


# gc=False: an event holds only strings, numbers, times, enums and tuples of frozen Structs, so it can
# be part of no reference cycle, and the collector need not track it. Tracked, the events of every
# batch an append or a projection holds were walked again by each full collection (one per
# 10,000-event append at times: ~10% of its time).
class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True, gc=False):
    """Fields every archive event carries."""

    room: str
    occurred_at: UtcTime
    recorded_at: UtcTime
    capture: Capture = Capture.LIVE


class RoomDiscovered(Event, tag="room_discovered"):
    """The listener found an existing room (service discovery, config, admin list)."""

    name: str | None = None
    description: str | None = None
    features: tuple[str, ...] = ()


class RoomCreated(Event, tag="room_created"):
    """The room came into existence while the listener watched (status 201)."""

    name: str | None = None


class OccupantJoined(Event, tag="occupant_joined"):
    """An occupant entered the room."""

    nick: str
    jid: str | None = None  # real JID, only where the room reveals it
    role: str | None = None
    affiliation: str | None = None
    show: str | None = None
    status: str | None = None
    occupant_id: str | None = None  # XEP-0421 stable pseudonym


class OccupantLeft(Event, tag="occupant_left"):
    """An occupant stopped being in the room, and why."""

    nick: str
    reason: LeaveReason = LeaveReason.LEFT
    jid: str | None = None
    actor: str | None = None  # who kicked/banned, when given
    reason_text: str | None = None
    status: str | None = None  # the occupant's parting status text
    occupant_id: str | None = None


class PresenceChanged(Event, tag="presence_changed"):
    """An occupant changed show (away, dnd, ...) or status text."""

    nick: str
    show: str | None = None
    status: str | None = None
    jid: str | None = None
    occupant_id: str | None = None


class NickChanged(Event, tag="nick_changed"):
    """An occupant changed nickname (status 303)."""

    old_nick: str
    new_nick: str
    jid: str | None = None
    occupant_id: str | None = None


class RoleChanged(Event, tag="role_changed"):
    """An occupant's role changed (visitor, participant, moderator)."""

    nick: str
    role: str
    jid: str | None = None
    actor: str | None = None
    reason_text: str | None = None
    occupant_id: str | None = None


class AffiliationChanged(Event, tag="affiliation_changed"):
    """A user's affiliation changed (none, member, admin, owner, outcast)."""

    affiliation: str
    nick: str | None = None  # absent when the user is not in the room
    jid: str | None = None
    actor: str | None = None
    reason_text: str | None = None
    occupant_id: str | None = None


class SubjectChanged(Event, tag="subject_changed"):
    """The room's subject was set; ``nick`` is None when the room itself set it."""

    subject: str
    nick: str | None = None


class MessagePosted(Event, tag="message_posted"):
    """A groupchat message.

    ``stanza_id`` is the room's XEP-0359 id (the MAM id); ``message_id`` is the
    stanza's own ``id`` attribute, which XEP-0308 corrections point at.
    """

    nick: str
    body: str
    stanza_id: str | None = None
    message_id: str | None = None
    origin_id: str | None = None
    jid: str | None = None
    occupant_id: str | None = None
    thread: str | None = None
    lang: str | None = None


class MessageCorrected(Event, tag="message_corrected"):
    """XEP-0308: ``replaces_id`` is the corrected message's ``id`` attribute."""

    nick: str
    replaces_id: str
    body: str
    stanza_id: str | None = None
    message_id: str | None = None
    origin_id: str | None = None
    jid: str | None = None
    occupant_id: str | None = None


class MessageRetracted(Event, tag="message_retracted"):
    """XEP-0424 retraction by the author, or XEP-0425 moderation.

    ``target_id`` is the stanza-id (moderation) or origin-id (self retraction)
    of the removed message.
    """

    target_id: str
    moderated: bool = False
    by_nick: str | None = None
    by_jid: str | None = None
    reason: str | None = None
    stanza_id: str | None = None
    occupant_id: str | None = None


class RoomDestroyed(Event, tag="room_destroyed"):
    """The room was destroyed (XEP-0045 §10.9) or disappeared from the service."""

    reason: str | None = None
    alternate_room: str | None = None
    actor: str | None = None


class ArchiveGap(Event, tag="archive_gap"):
    """A span in which the archive knows it may have missed events, and why."""

    gap_start: UtcTime
    gap_end: UtcTime
    kind: GapKind = GapKind.PRESENCE
    explanation: str = ""
    recovered: int | None = None  # messages of the span fetched afterwards (MAM or replayed history)
    verified: bool = False  # the room's archive was read over the span: every message it holds is archived


COMPLIANCE_STREAM = "chat-archive:compliance"
"""The stream of checkpoints, legal holds and purge records (a room JID never contains a colon)."""
AUDIT_STREAM = "chat-archive:audit"
"""The stream of audit records: who read what."""
SYSTEM_STREAMS = (COMPLIANCE_STREAM, AUDIT_STREAM)


# What a decoded record may give as a version, and as a link (a SHA-256 in hex; a purge span's is empty where
# the purged version had none): a record read from a file (a backup) names versions a store can go on from,
# which it can still serve as JSON numbers exact in JavaScript.
MAX_NUMBER = 2**53 - 1
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_NUMBER)]
Link = Annotated[str, msgspec.Meta(pattern="^([0-9a-f]{64})?$")]


class ChainHead(msgspec.Struct, frozen=True, array_like=True):
    """A stream's hash-chain link at ``version`` (hex), and the version its chain started at."""

    stream: str
    version: Version
    link: Link
    genesis_version: Version


class PurgedSpan(msgspec.Struct, frozen=True, array_like=True):
    """Versions ``first``..``last`` of a stream were purged; ``link`` (hex) is the link of
    version ``last``, from which the chain continues."""

    stream: str
    first: Version
    last: Version
    link: Link


class ChainCheckpoint(Event, tag="chain_checkpoint"):
    """Every stream's chain head, recorded in the compliance stream."""

    heads: tuple[ChainHead, ...] = ()


class LegalHoldPlaced(Event, tag="legal_hold_placed"):
    """Events of these rooms and/or people in [hold_from, hold_to) must survive every purge.

    Empty ``rooms`` means every room, empty ``jids`` every person, a missing bound no bound.
    """

    hold_id: str
    case: str
    rooms: tuple[str, ...] = ()
    jids: tuple[str, ...] = ()
    hold_from: UtcTime | None = None
    hold_to: UtcTime | None = None
    by: str = ""


class LegalHoldReleased(Event, tag="legal_hold_released"):
    """The hold ``hold_id`` no longer protects anything."""

    hold_id: str
    by: str = ""
    reason: str = ""


class EventsPurged(Event, tag="events_purged"):
    """Expired events are deleted from the store (recorded first), then from the views and the index
    (``PurgeApplied`` says when)."""

    cutoff_policy: str
    spans: tuple[PurgedSpan, ...] = ()
    events: int = 0
    by: str = ""


class PurgeApplied(Event, tag="purge_applied"):
    """The views and the search index were rebuilt from the log after the purge recorded at ``purge_position``
    and every earlier one: nothing those purges deleted can be read or found any more. ``search_index`` is the id
    of the index generation that rebuild made: every other index following the log (one per API host) rebuilds
    itself when it reads this record."""

    purge_position: int
    by: str = ""
    search_index: str = ""


class ContentRead(Event, tag="content_read"):
    """Audit record: someone read archived content (search, transcript, export, ...)."""

    request_id: str
    via: str  # api | web | cli
    endpoint: str
    token_id: str | None = None
    role: str | None = None
    user: str | None = None
    rooms: tuple[str, ...] = ()
    query: str | None = None
    range_from: UtcTime | None = None
    range_to: UtcTime | None = None
    results: int | None = None
    status: int | None = None


ArchiveEvent = Union[
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
    ChainCheckpoint,
    LegalHoldPlaced,
    LegalHoldReleased,
    EventsPurged,
    PurgeApplied,
    ContentRead,
]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls for cls in ArchiveEvent.__args__  # type: ignore[attr-defined]
}


class Recorded(msgspec.Struct, frozen=True, gc=False):  # gc=False: see Event
    """An event with its position in the global log (strictly increasing; not gapless)."""

    position: int
    event: ArchiveEvent


# The archive's own records, each kept in one stream of its own, never in a room's.
COMPLIANCE_KINDS = (ChainCheckpoint, LegalHoldPlaced, LegalHoldReleased, EventsPurged, PurgeApplied)


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
