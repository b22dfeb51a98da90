"""A room's catch-up over the network: read its archive from the anchor, then confirm the span.

The rules (anchor, what to read, what counts as complete, the gap record) are
in ``catchup``; this module runs the MAM queries and waits for the writer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from archive import events as ev
from archive.errors import StoreError
from archive.times import format_time

from .catchup import (
    Anchor, ArchiveRead, CatchUp, archive_end, archived_ids, compare, fallback_read, first_read, held_ids,
    reconcile_start, store_read_start,
)
from .mam import ArchiveQueryError, archive_pages
from .rooms import RoomState, Rooms
from .translate_message import translate_archived

log = logging.getLogger(__name__)

FLUSH_TIMEOUT = 120.0  # how long a catch-up waits for the store to take what it fetched


async def catch_up(
    rooms: Rooms, client, state: RoomState, anchor: Anchor, first: bool, gap_start: datetime | None, joined_at: datetime, base: int
) -> CatchUp:
    """Read the room's archive from ``anchor``, then confirm every message it holds for the span is archived.

    ``base``: the room's recovered count before the join (``Rooms.recovered``).
    """
    room = state.room
    if not state.mam:
        await _flush(rooms)
        return CatchUp(mam=False, recovered=rooms.recovered[room] - base)
    capture = ev.Capture.IMPORT if first else ev.Capture.BACKFILL
    read, problem = first_read(anchor, first, gap_start), None
    try:
        fetched = await _fetch(rooms, client, state, read, capture)
    except ArchiveQueryError as e:
        if e.condition != "item-not-found" or not read.after:
            log.warning("backfill of %s failed: %s", room, e)
            return CatchUp(mam=True, recovered=rooms.recovered[room] - base, problem=f"the room's archive could not be read ({e})")
        read = fallback_read(anchor, gap_start)
        log.info("%s: archive does not know id %s, reading from %s", room, anchor.stanza_id, read.start)
        try:
            fetched = await _fetch(rooms, client, state, read, capture)
        except ArchiveQueryError as e:
            log.warning("backfill of %s failed: %s", room, e)
            return CatchUp(mam=True, recovered=rooms.recovered[room] - base, problem=f"the room's archive could not be read ({e})")
        oldest = min((stamp for stamp, _ in fetched.values()), default=None)
        if anchor.message_at and (oldest is None or oldest > anchor.message_at):
            since = format_time(oldest) if oldest else "the rejoin"
            problem = f"the room's archive no longer holds the last archived message ({anchor.stanza_id}) and starts at {since}"
    try:
        checked = await _reconcile(rooms, client, state, anchor, first, gap_start, joined_at, fetched if read == ArchiveRead() else None, capture)
    except ArchiveQueryError as e:
        log.warning("reconciling %s failed: %s", room, e)
        problem = problem or f"the room's archive could not be read again to confirm the span ({e})"
        checked = None
    except StoreError as e:  # the store unreachable: what was fetched is queued, but unconfirmed
        log.warning("reconciling %s failed: %s", room, e)
        problem = problem or f"the archive could not be read to confirm the span ({e})"
        checked = None
    if checked is not None and checked.missing:
        log.error("%s: %d messages of the room's archive could not be stored", room, len(checked.missing))
    return CatchUp(mam=True, recovered=rooms.recovered[room] - base, checked=checked, problem=problem)


async def _fetch(rooms: Rooms, client, state: RoomState, read: ArchiveRead, capture, *, end=None, emit=True) -> dict:
    """The archived messages of ``read`` (up to ``end``), emitted unless not ``emit``: stanza-id -> (stamp, events)."""
    fetched: dict[str, tuple[datetime, list[ev.Event]]] = {}
    view = rooms.views[state.room]
    async for page in archive_pages(client, state.room, after=read.after, start=read.start, end=end, flow=rooms.flow):
        now = rooms.clock()
        for result in page:
            events = translate_archived(result, state.ctx, view, now, capture)
            if emit:
                rooms.emit(state, events, direct=True)
            for sid in archived_ids(events):
                fetched[sid] = (events[0].occurred_at, events)
    return fetched


async def _reconcile(rooms, client, state, anchor, first, gap_start, joined_at, fetched, capture):
    """Compare the span with the server's archive; fetch and store what is missing; compare again.

    ``fetched``: the whole archive, when the catch-up read it all (a first import): not read twice.
    """
    start = reconcile_start(anchor, first, gap_start)
    if fetched is None:
        end = archive_end(joined_at, rooms.clock_offset)
        fetched = await _fetch(rooms, client, state, ArchiveRead(start=start), capture, end=end, emit=False)
    checked = await _check(rooms, state, start, fetched)
    if checked.missing:
        log.warning("%s: %d messages the room's archive holds for the span were not archived; storing them", state.room, len(checked.missing))
        for sid in checked.missing:
            rooms.emit(state, fetched[sid][1], direct=True)
        checked = await _check(rooms, state, start, fetched)
    return checked


async def _check(rooms: Rooms, state: RoomState, start, fetched: dict):
    await _flush(rooms)
    stored = await asyncio.to_thread(_stored_ids, rooms.store, state.room, store_read_start(start, rooms.clock_offset))
    archived = stored | archived_ids(state.held)  # held live messages are written on release
    return compare(fetched, held_ids(fetched, archived, rooms.views[state.room]))


def _stored_ids(store, room: str, start) -> set[str]:
    # A live copy carries its receive time, never earlier than the archive's stamp once ``start`` allows for the
    # clocks' offset (``store_read_start``); from a whole second, as the archive reads it (``reconcile_start``):
    # every stored copy of a message the archive returns for the span is found.
    return archived_ids(r.event for r in store.read_room(room, start=start))


async def _flush(rooms: Rooms) -> None:
    mark = rooms.writer.mark()
    if not await asyncio.to_thread(rooms.writer.wait_written, mark, FLUSH_TIMEOUT):
        log.warning("the store did not take the catch-up's events within %.0f s", FLUSH_TIMEOUT)
