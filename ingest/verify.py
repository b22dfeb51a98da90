"""Completeness of the archive, checked against the rooms' own archives (MAM) on the live server.

For each room, every message the room's archive holds for the span is compared,
stanza-id by stanza-id, with what the archive holds (``catchup.compare``, the
rule the listener's reconciliation uses too); ``repair`` stores what is missing.
A tombstone (a message the server retracted or moderated, its text gone) counts
as a message the room's archive holds, and as archived once its removal is too.
What cannot be checked is reported as an unverifiable span, with the reason: a
room without MAM, a room the server no longer has, history older than the
room's archive reaches back.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import msgspec

from archive import events as ev
from archive.store import EventStore
from archive.times import format_time, utcnow

from .catchup import MESSAGE_EVENTS, archived_ids, compare, held_ids, recovered_message, tombstone
from .client import MAM_NS, OCCUPANT_ID_NS, ROOM_GONE, DiscoError, room_info, session
from .mam import ArchiveQueryError, archive_pages
from .roomview import RoomView
from .settings import XmppSettings
from .translate_message import translate_archived
from .xmlutil import RoomContext

# Messages the server stamped within this much of now may still be on their way into the
# store of a running listener: the check ends this long ago.
SETTLE = timedelta(seconds=1)
MISSING_LISTED = 20  # stanza-ids of missing messages named per room


class Span(msgspec.Struct, kw_only=True):
    start: datetime | None
    end: datetime | None
    why: str


class RoomReport(msgspec.Struct, kw_only=True):
    room: str
    server: int = 0  # messages the room's archive holds for the span
    tombstones: int = 0  # of those, held by the room's archive only as tombstones (retracted or moderated)
    archived: int = 0  # of those, archived (after any repair); a tombstone with its removal
    missing: int = 0
    recovered: int = 0  # stored by this run's repair
    missing_ids: list[str] = []  # the first few
    unverifiable: list[Span] = []


def verify(
    settings: XmppSettings,
    store: EventStore,
    rooms: list[str],
    *,
    since: datetime | None = None,
    repair: bool = False,
) -> list[RoomReport]:
    """Check each room's span from ``since`` (its whole history if None) until a moment ago."""
    until = utcnow() - SETTLE
    return asyncio.run(_verify(settings, store, rooms, since, until, repair))


async def _verify(settings, store, rooms, since, until, repair) -> list[RoomReport]:
    async with session(settings) as client:
        return [await _room(client, settings, store, room, since, until, repair) for room in rooms]


async def _room(client, settings, store, room, since, until, repair) -> RoomReport:
    events = await asyncio.to_thread(_events, store, room, since)
    report = RoomReport(room=room)
    whole = Span(start=since, end=until, why="")
    try:
        info = await room_info(client, room)
    except DiscoError as e:
        why = "the server no longer has this room" if e.condition in ROOM_GONE else f"the room cannot be queried ({e})"
        return _unverifiable(report, whole, why, events)
    if MAM_NS not in info.features:
        return _unverifiable(report, whole, "the room keeps no archive (MAM) to check against", events)
    ctx = RoomContext(room=room, own_nick=settings.nick, trust_occupant_id=OCCUPANT_ID_NS in info.features)
    view = RoomView.from_events(room, events)
    try:
        server = await _server_messages(client, ctx, view, since, until)
    except ArchiveQueryError as e:
        return _unverifiable(report, whole, f"the room's archive could not be read ({e})", events)
    checked = compare(server, held_ids(server, archived_ids(events), view))
    if repair and checked.missing:
        stored = await asyncio.to_thread(store.append, [e for sid in checked.missing for e in server[sid][1]])
        report.recovered = sum(recovered_message(r.event) for r in stored)
        events = await asyncio.to_thread(_events, store, room, since)
        checked = compare(server, held_ids(server, archived_ids(events), RoomView.from_events(room, events)))
    report.server, report.archived, report.missing = checked.server, checked.archived, len(checked.missing)
    report.tombstones = sum(tombstone(found) is not None for _, found in server.values())
    report.missing_ids = list(checked.missing[:MISSING_LISTED])
    oldest = min((stamp for stamp, _ in server.values()), default=None)
    older = [e for e in events if isinstance(e, MESSAGE_EVENTS) and e.occurred_at < (oldest or until)]
    if older:
        reach = f"starts at {format_time(oldest)}" if oldest else "holds nothing for the span"
        report.unverifiable.append(Span(start=older[0].occurred_at, end=oldest or until, why=f"the room's archive {reach}"))
    return report


async def _server_messages(client, ctx, view, since, until) -> dict[str, tuple[datetime, list[ev.Event]]]:
    found: dict[str, tuple[datetime, list[ev.Event]]] = {}
    async for page in archive_pages(client, ctx.room, start=since, end=until):
        now = utcnow()
        for result in page:
            events = translate_archived(result, ctx, view, now, ev.Capture.BACKFILL)
            for sid in archived_ids(events):
                found[sid] = (events[0].occurred_at, events)
    return found


def _unverifiable(report: RoomReport, span: Span, why: str, events: list[ev.Event]) -> RoomReport:
    report.archived = len(archived_ids(events))
    report.unverifiable.append(msgspec.structs.replace(span, why=why))
    return report


def _events(store: EventStore, room: str, since) -> list[ev.Event]:
    # To the end: a live copy carries its receive time, a little after the server's stamp.
    return [r.event for r in store.read_room(room, start=since)]
