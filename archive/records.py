"""The archive's own records: chain checkpoints, legal holds and purges (the compliance stream) and audit
records (the audit trail, kept beside the log). Each is an ``Event`` of the one schema (``archive.events``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .room_events import Event, UtcTime

COMPLIANCE_STREAM = "chat-archive:compliance"
"""The stream of checkpoints, legal holds and purge records (a room JID never contains a colon)."""
AUDIT_STREAM = "chat-archive:audit"
"""The stream of audit records: who read what."""
SYSTEM_STREAMS = (COMPLIANCE_STREAM, AUDIT_STREAM)
COPIED = ":copied"


def copied_trail(trail: str) -> str:
    """The name a store gives the audit trail ``trail`` of the store it was migrated or restored from
    (``archive.copied_trails``); a copy of a copy gets the suffix twice."""
    return trail + COPIED


def trail_origin(stream: str) -> str:
    """The stream whose chain a copied trail goes on (its genesis): the name it had where it was written."""
    while stream.endswith(COPIED):
        stream = stream[: -len(COPIED)]
    return stream


def is_audit_trail(stream: str) -> bool:
    return trail_origin(stream) == AUDIT_STREAM


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


# The archive's own records, each kept in one stream of its own, never in a room's.
COMPLIANCE_KINDS = (ChainCheckpoint, LegalHoldPlaced, LegalHoldReleased, EventsPurged, PurgeApplied)
