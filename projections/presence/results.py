"""What the presence queries return (``queries.Presence``): msgspec Structs, as the API serves them."""

from __future__ import annotations

import msgspec

from . import logic
from .logic import Gap, Span


class Occupant(msgspec.Struct, kw_only=True, omit_defaults=True):
    nick: str
    since: logic.ev.UtcTime  # start of the stay
    jid: str | None = None
    occupant_id: str | None = None
    role: str | None = None
    affiliation: str | None = None
    show: str | None = None
    status: str | None = None


class OccupantsAt(msgspec.Struct, kw_only=True):
    room: str
    at: logic.ev.UtcTime
    known: bool
    occupants: list[Occupant]
    gap: Gap | None = None
    possibly_present: list[Occupant] = []
    known_until: logic.ev.UtcTime | None = None  # the archive's last known moment
    unknown_why: str | None = None  # why presence at ``at`` is not known (``logic.unknown_why``)


class Stay(msgspec.Struct, kw_only=True):
    room: str
    id: int
    nicks: list[str]
    start: logic.ev.UtcTime
    end: logic.ev.UtcTime | None
    end_reason: str | None
    end_known: bool
    start_inferred: bool
    spans: list[Span]
    jid: str | None = None
    occupant_id: str | None = None
    complete: bool = True  # False: more than MAX_SPANS spans, of which ``spans`` are the first


class StaysPage(msgspec.Struct, kw_only=True):
    stays: list[Stay]
    more: bool  # the budget of spans ran out before the stays asked for did


class PeopleStays(msgspec.Struct, kw_only=True):
    stays: list[Stay]  # each once (a stay may have had several nicks), by (start, id)
    # Where the rest begins: after this nick (stay None), or at it after this stay. None: nothing is left.
    next: tuple[str, int | None] | None


class OccupancyBucket(msgspec.Struct, kw_only=True):
    start: logic.ev.UtcTime
    end: logic.ev.UtcTime
    peak: int
    distinct: int
    unknown: bool


class Occupancy(msgspec.Struct, kw_only=True):
    room: str
    start: logic.ev.UtcTime
    end: logic.ev.UtcTime
    buckets: list[OccupancyBucket]
