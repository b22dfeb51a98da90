"""Joining one room: discover what it serves, enter with as little history as needed,
catch up from its archive (``backfill``), and record the span nobody watched as a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime

from archive import events as ev

from .backfill import catch_up
from .catchup import CatchUp, begin_catch_up, first_catch_up, gap_event, history_request, restart_gap_start
from .client import MAM_NS, OCCUPANT_ID_NS, ROOM_GONE, SID_NS, DiscoError, room_info
from .flow import answered
from .roomview import RoomView
from .rooms import JOINED, JOINING, RoomState, Rooms
from .xmlutil import RoomContext

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0
SUBJECT_WAIT = 5.0


async def join_room(rooms: Rooms, client, state: RoomState) -> None:
    """Join (or rejoin) one room; on failure the room is marked unavailable and tried again later."""
    try:
        await _join(rooms, client, state)
    except Exception as e:  # noqa: BLE001 - one room's trouble must not stop the listener
        log.exception("joining %s failed", state.room)
        rooms.abandon(state)
        rooms.unavailable(state, f"internal error while joining: {e}")


async def _join(rooms: Rooms, client, state: RoomState) -> None:
    room = state.room
    state.phase = JOINING
    view = await rooms.view(room)
    first = first_catch_up(view)
    # Kept on the state (and so in the status) until the join completes: a catch-up cut off stores what it read of
    # the room's archive, recorded after the time away, and the next attempt or start must not begin there.
    gap_start = state.gap_start = state.gap_start or (None if first else _restart_gap_start(rooms, room, view))
    try:
        info = await answered(rooms.flow, lambda: room_info(client, room))
    except DiscoError as e:
        if e.condition in ROOM_GONE:
            return rooms.gone(state, view, "the service no longer has this room", gap_start)
        return rooms.unavailable(state, str(e))
    state.mam = mam = MAM_NS in info.features
    state.ctx = RoomContext(
        room=room,
        own_nick=state.nick,
        trust_stanza_id=SID_NS in info.features or mam,
        trust_occupant_id=OCCUPANT_ID_NS in info.features,
    )
    now = rooms.clock()
    if view.last_event_at is None:
        features = tuple(sorted(info.features))
        discovered = ev.RoomDiscovered(
            room=room, occurred_at=now, recorded_at=now, name=info.name, features=features, first_join_pending=first
        )
        rooms.emit(state, [discovered])
    # Taken before the join is sent: live events from here on change the view, never the anchor.
    anchor = state.anchor = begin_catch_up(state.anchor, view)
    base = state.recovered_base = rooms.recovered[room]
    state.holding, state.held = True, []
    history = history_request(anchor, first, mam, rooms.settings.import_archive, gap_start)
    outcome = await _enter(rooms, client, state, view, history)
    if outcome[0] != "joined":
        rooms.abandon(state)
        if outcome[0] == "created":
            return await _undo_creation(rooms, client, state, view, gap_start)
        return rooms.unavailable(state, outcome[1])
    await await_subject(state)
    joined_at = rooms.clock()
    if mam and first and not rooms.settings.import_archive:
        result = None
    else:
        result = await catch_up(rooms, client, state, anchor, first, gap_start, joined_at, base)
    if gap_start:
        rooms.emit_gap(state, [gap_event(room, gap_start, joined_at, result or CatchUp(mam=mam))])
    if first and not (result and result.problem):  # an import that could not read the archive is owed still
        recovered = None if result is None else result.recovered
        done = ev.FirstJoinCompleted(room=room, occurred_at=joined_at, recorded_at=joined_at, recovered=recovered)
        rooms.emit(state, [done], direct=True)
    rooms.release(state)
    state.phase, state.gap_start, state.reason, state.anchor = JOINED, None, None, None
    rooms.changed()
    log.info("archiving %s%s", room, " (with MAM backfill)" if mam else "")


async def await_subject(state: RoomState, timeout: float = SUBJECT_WAIT) -> None:
    """Wait for the subject, which ends the join (XEP-0045 §7.2.15), at most ``timeout``.

    A room slow to send it is caught up meanwhile; the view keeps replaying (``RoomView.replaying``): its history,
    however late, is history and its re-sent subject no change. Only the subject ends that (or a refused join).
    """
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(state.join_done.wait(), timeout)


async def _enter(rooms: Rooms, client, state: RoomState, view: RoomView, history: dict) -> tuple:
    """Send the join; wait for our own presence (or an error). Retries another nick on conflict."""
    for attempt in range(3):
        await rooms.flow.reading()  # a join sent with reading paused could only be answered unread
        state.join_future = asyncio.get_running_loop().create_future()
        state.join_done.clear()
        view.begin_join()
        client.plugin["xep_0045"].make_join_stanza(state.room, state.nick, **history).send()
        try:
            # Only time spent reading counts: the room's answer may wait unread behind a pause (``flow``).
            future = state.join_future
            outcome = await answered(rooms.flow, lambda: asyncio.wait_for(asyncio.shield(future), JOIN_TIMEOUT))
        except asyncio.TimeoutError:
            outcome = ("refused", "no answer to the join request", "timeout")
        finally:
            state.join_future = None
        if outcome[0] == "refused" and outcome[2] == "conflict":
            state.nick = f"{rooms.settings.nick}~{attempt + 2}"
            state.ctx = replace(state.ctx, own_nick=state.nick)
            continue
        if outcome[0] != "joined":
            view.replaying = False  # no room replays history to one it refused
        return outcome
    return outcome


def _restart_gap_start(rooms: Rooms, room: str, view: RoomView) -> datetime | None:
    """Since when nobody watched the room, from the previous run's status (see ``restart_gap_start``)."""
    previous = rooms.previous
    watched = previous.stored_until if previous and room in previous.rooms_joined else None
    return restart_gap_start(view.last_event_at, watched, previous.rooms_away.get(room) if previous else None)


async def _undo_creation(rooms: Rooms, client, state: RoomState, view: RoomView, gap_start: datetime | None) -> None:
    """Our join created the room (status 201): it had ceased to exist. Do not keep it alive."""
    try:
        await client.plugin["xep_0045"].destroy(state.room, reason="created by mistake by the archive listener")
    except Exception as e:  # noqa: BLE001 - the server removes an unconfigured room anyway
        log.warning("could not destroy %s after creating it: %s", state.room, e)
    rooms.gone(state, view, "the room no longer existed when the listener rejoined", gap_start)
