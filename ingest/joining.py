"""Joining one room: discover what it serves, enter with as little history as needed,
backfill from its archive, and record the span nobody watched as a gap.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from archive import events as ev
from archive.times import utcnow

from .client import MAM_NS, OCCUPANT_ID_NS, ROOM_GONE, SID_NS, DiscoError, room_info
from .mam import ArchiveQueryError, archive_pages
from .roomview import RoomView
from .rooms import JOINED, JOINING, RoomState, Rooms
from .settings import XmppSettings
from .translate_message import translate_archived
from .xmlutil import RoomContext

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0
OVERLAP = timedelta(seconds=60)  # re-read this much before a time bound; duplicates collapse in the store


async def join_room(rooms: Rooms, client, state: RoomState) -> None:
    """Join (or rejoin) one room; on failure the room is marked unavailable and tried again later."""
    try:
        await _join(rooms, client, state)
    except Exception as e:  # noqa: BLE001 - one room's trouble must not stop the listener
        log.exception("joining %s failed", state.room)
        rooms.release(state)
        rooms.unavailable(state, f"internal error while joining: {e}")


async def _join(rooms: Rooms, client, state: RoomState) -> None:
    room = state.room
    state.phase = JOINING
    view = await rooms.view(room)
    try:
        info = await room_info(client, room)
    except DiscoError as e:
        if e.condition in ROOM_GONE:
            return rooms.gone(state, view, "the service no longer has this room")
        return rooms.unavailable(state, str(e))
    first = view.last_event_at is None
    mam = MAM_NS in info.features
    state.ctx = RoomContext(
        room=room,
        own_nick=state.nick,
        trust_stanza_id=SID_NS in info.features or mam,
        trust_occupant_id=OCCUPANT_ID_NS in info.features,
    )
    now = utcnow()
    if first:
        features = tuple(sorted(info.features))
        rooms.emit(state, [ev.RoomDiscovered(room=room, occurred_at=now, recorded_at=now, name=info.name, features=features)])
    gap_start = state.gap_start or (None if first else _restart_gap_start(rooms, room, view))
    state.holding, state.held = True, []
    outcome = await _enter(rooms, client, state, view, history_request(rooms.settings, view, first, mam, gap_start))
    if outcome[0] != "joined":
        rooms.release(state)
        if outcome[0] == "created":
            return await _undo_creation(rooms, client, state, view)
        return rooms.unavailable(state, outcome[1])
    try:  # history and the subject end the join (XEP-0045 §7.2.15)
        await asyncio.wait_for(state.join_done.wait(), 5)
    except asyncio.TimeoutError:
        view.joining = False
    joined_at = utcnow()
    recovered = not mam or (first and not rooms.settings.import_archive)
    if not recovered:
        recovered = await _backfill(rooms, client, state, view, first, gap_start)
    if gap_start:
        rooms.emit(state, [_gap(room, gap_start, joined_at, mam and recovered)], direct=True)
    rooms.release(state)
    state.phase, state.gap_start, state.reason = JOINED, None, None
    rooms.changed()
    log.info("archiving %s%s", room, " (with MAM backfill)" if mam else "")


async def _enter(rooms: Rooms, client, state: RoomState, view: RoomView, history: dict) -> tuple:
    """Send the join; wait for our own presence (or an error). Retries another nick on conflict."""
    for attempt in range(3):
        state.join_future = asyncio.get_running_loop().create_future()
        state.join_done.clear()
        view.begin_join()
        client.plugin["xep_0045"].make_join_stanza(state.room, state.nick, **history).send()
        try:
            outcome = await asyncio.wait_for(state.join_future, JOIN_TIMEOUT)
        except asyncio.TimeoutError:
            outcome = ("refused", "no answer to the join request", "timeout")
        finally:
            state.join_future = None
        if outcome[0] == "refused" and outcome[2] == "conflict":
            state.nick = f"{rooms.settings.nick}~{attempt + 2}"
            state.ctx = replace(state.ctx, own_nick=state.nick)
            continue
        if outcome[0] != "joined":
            view.joining = False
        return outcome
    return outcome


def history_request(settings: XmppSettings, view: RoomView, first: bool, mam: bool, gap_start: datetime | None) -> dict:
    """As little discussion history as the archive needs (XEP-0045 §7.2.14)."""
    if mam:
        return {"maxstanzas": 0}  # MAM backfill is complete and exact
    if first:
        return {} if settings.import_archive else {"maxstanzas": 0}
    since = view.last_message_at or gap_start or view.last_event_at
    return {"since": since.replace(microsecond=0)}  # replayed duplicates collapse in the store


async def _backfill(rooms: Rooms, client, state: RoomState, view: RoomView, first: bool, gap_start) -> bool:
    """Every archived message the archive lacks; False if the archive could not be read completely."""
    capture = ev.Capture.IMPORT if first else ev.Capture.BACKFILL
    after = None if first else view.last_stanza_id
    start = None if first or after else (gap_start or view.last_event_at) - OVERLAP
    try:
        await _fetch(rooms, client, state, view, after, start, capture)
        return True
    except ArchiveQueryError as e:
        if e.condition != "item-not-found" or not after:
            log.warning("backfill of %s failed: %s", state.room, e)
            return False
    # The archive does not know our last id (expired, or another archive): read by time.
    fallback = (view.last_message_at or gap_start or view.last_event_at) - OVERLAP
    log.info("%s: archive does not know id %s, reading from %s", state.room, after, fallback)
    try:
        await _fetch(rooms, client, state, view, None, fallback, capture)
        return True
    except ArchiveQueryError as e:
        log.warning("backfill of %s failed: %s", state.room, e)
        return False


async def _fetch(rooms: Rooms, client, state, view, after, start, capture) -> None:
    async for page in archive_pages(client, state.room, after=after, start=start):
        now = utcnow()
        for result in page:
            rooms.emit(state, translate_archived(result, state.ctx, view, now, capture), direct=True)


def _gap(room: str, start: datetime, end: datetime, messages_recovered: bool) -> ev.ArchiveGap:
    if messages_recovered:
        kind, why = ev.GapKind.PRESENCE, "listener away; messages recovered from the room's archive, presence cannot be"
    else:
        kind, why = ev.GapKind.MESSAGES, "listener away and the room's archive unavailable: messages and presence may be missing"
    return ev.ArchiveGap(room=room, occurred_at=end, recorded_at=end, gap_start=start, gap_end=end, kind=kind, explanation=why)


def _restart_gap_start(rooms: Rooms, room: str, view: RoomView) -> datetime | None:
    """Since when nobody watched the room: until when the previous run had stored all it saw, or its last event."""
    start = view.last_event_at
    previous = rooms.previous
    watched = previous.stored_until if previous and room in previous.rooms_joined else None
    if watched and (start is None or watched > start):
        start = watched
    return start


async def _undo_creation(rooms: Rooms, client, state: RoomState, view: RoomView) -> None:
    """Our join created the room (status 201): it had ceased to exist. Do not keep it alive."""
    try:
        await client.plugin["xep_0045"].destroy(state.room, reason="created by mistake by the archive listener")
    except Exception as e:  # noqa: BLE001 - the server removes an unconfigured room anyway
        log.warning("could not destroy %s after creating it: %s", state.room, e)
    rooms.gone(state, view, "the room no longer existed when the listener rejoined")
