"""The events of a room: who joined, left, changed presence, nick, role or affiliation, what was said, corrected
or retracted, the subject, the room's end, and where the archive knows it may have missed something.

The rules by which this schema may change are in ``archive.events``, which unites these with the archive's own
records in one tagged union.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

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
    first_join_pending: bool = False  # a ``FirstJoinCompleted`` will follow: until then the first import is owed


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
    ``body_kept`` False: the text is not known (``body`` is empty). The room's
    archive held only the tombstone its server left of the message when it was
    retracted or moderated (XEP-0424/0425): the message existed, its removal
    follows as a ``MessageRetracted``, its text was never archived here.
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
    body_kept: bool = True


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
    of the removed message. ``by_jid``: the moderator's real JID where the room
    names it (older XEP-0425), or the author's, as the listener knows it, for a
    self-retraction (recorded since the message model judges retractions by it).
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


class FirstJoinCompleted(Event, tag="first_join_completed"):
    """The listener's first join of the room completed, with its first catch-up (the room's whole archive imported,
    or its discussion history, as configured): a later join catches up from what the archive holds. Until it is
    recorded, a join that failed (refused, or cut off while importing) is retried as the first."""

    recovered: int | None = None  # messages the first catch-up stored (None: it read nothing)
