"""The XMPP listener: stays connected, joins rooms, turns what it sees into archive events.

One asyncio loop (slixmpp's) in a thread of its own; the store is written by a
``BatchWriter`` thread. Per room:

- service discovery lists it (or the config names it) and include/exclude allow it;
- disco#info says what it serves (MAM, stanza-ids, occupant-ids);
- the join asks for as little history as needed: none when MAM will backfill,
  ``since`` the last archived message otherwise;
- presences announced during the join are diffed against who the archive has
  present: unknown occupants join, missing ones are closed out (lost sight);
- after the join, MAM is read after the last archived stanza-id (all of it on
  a first join with ``import_archive``); live events of the room are held until
  then so the room's stream stays in order;
- time not watched (disconnect, restart) becomes an ``ArchiveGap``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from archive import events as ev
from archive.errors import ChatArchiveError
from archive.store import EventStore
from archive.times import utcnow

from .client import (
    MAM_NS,
    OCCUPANT_ID_NS,
    ROOM_GONE,
    SID_NS,
    DiscoError,
    allowed,
    is_encrypted,
    list_rooms,
    make_client,
    room_info,
    server_address,
)
from .mam import ArchiveQueryError, archive_pages
from .roomview import RoomView
from .settings import XmppSettings
from .status import ListenerStatus, read_status, write_status
from .translate_message import translate_archived, translate_message
from .translate_presence import close_out, is_own_presence, lost_sight, translate_presence
from .writer import BatchWriter
from .xmlutil import CLIENT, MUC_USER, STANZAS, MalformedStanza, RoomContext, muc_user, q, split_jid, status_codes

log = logging.getLogger(__name__)

NEW, JOINING, JOINED, LOST, UNAVAILABLE = "new", "joining", "joined", "lost", "unavailable"
JOIN_TIMEOUT = 30.0
OVERLAP = timedelta(seconds=60)  # re-read this much before a time bound; duplicates collapse in the store


@dataclass
class RoomState:
    room: str
    nick: str
    phase: str = NEW
    ctx: RoomContext | None = None
    task: asyncio.Task | None = None
    join_future: asyncio.Future | None = None
    join_done: asyncio.Event = field(default_factory=asyncio.Event)  # the subject ended the join
    holding: bool = False  # live events wait in ``held`` while the room is backfilled
    held: list[ev.Event] = field(default_factory=list)
    gap_start: datetime | None = None  # since when the listener has not been watching
    reason: str | None = None  # why the room cannot be entered
    reported: str | None = None  # the last reason logged
    retry_at: float = 0.0


class Listener:
    """Run with ``run(stop)`` in a thread of its own (see ``start_listener``)."""

    def __init__(self, settings: XmppSettings, store: EventStore, *, status_file: Path | str | None = None):
        self.settings = settings
        self.store = store
        self.status_file = Path(status_file) if status_file else None
        self.previous = self._read_previous_status()
        now = utcnow()
        self.status = ListenerStatus(jid=settings.jid, pid=os.getpid(), started_at=now, updated_at=now)
        self.rooms: dict[str, RoomState] = {}
        self.views: dict[str, RoomView] = {}
        self.writer = BatchWriter(store, on_written=self._written, on_error=self._error)
        self.client = None
        self._session: asyncio.Future | None = None
        self._ended: asyncio.Future | None = None
        self.last_heard: datetime | None = None
        self._discovery: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(stop))
        finally:
            _close_loop(loop, self.client)

    async def _main(self, stop: threading.Event) -> None:
        self.writer.start()
        self.client = self._make_client()
        tasks = [asyncio.create_task(self._connection_loop()), asyncio.create_task(self._status_loop())]
        try:
            while not stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task]) -> None:
        # The last status names the rooms watched until now, for the next run's gap records.
        watched = self.joined_rooms()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._went_offline("listener stopped")
        if self.client.transport:
            try:
                await asyncio.wait_for(self.client.disconnect(wait=1), 2)
            except Exception:  # noqa: BLE001 - leaving anyway
                self.client.abort()
        self.writer.stop()
        self.status.stopped = True
        self._write_status(watched)

    def _make_client(self):
        client = make_client(self.settings)
        client.add_event_handler("session_start", lambda _: self._settle("session", True))
        for name in ("disconnected", "connection_failed", "failed_all_auth"):
            client.add_event_handler(name, lambda e, name=name: self._settle("ended", f"{name}: {e}"))
        client.add_filter("in", self._heard)
        client.register_handler(Callback("archive-presence", StanzaPath("presence"), self._on_presence))
        client.register_handler(Callback("archive-message", StanzaPath("message"), self._on_message))
        return client

    def _settle(self, which: str, value) -> None:
        future = self._session if which == "session" else self._ended
        if future is not None and not future.done():
            future.set_result(value)

    async def _connection_loop(self) -> None:
        delay = 0.5
        while True:
            reason = await self._one_connection()
            if reason:
                self._error(reason)
            await asyncio.sleep(delay)
            delay = 0.5 if reason is None else min(delay * 2, 30.0)

    async def _one_connection(self) -> str | None:
        """Connect, serve the session until it ends; the failure reason, or None after a session."""
        loop = asyncio.get_running_loop()
        client = self.client
        self._session, self._ended = loop.create_future(), loop.create_future()
        client.connect(*server_address(self.settings))
        try:
            await asyncio.wait({self._session, self._ended}, timeout=JOIN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if not self._session.done() or self._ended.done():
                why = self._ended.result() if self._ended.done() else "timeout"
                return f"cannot connect to {server_address(self.settings)}: {why}"
            if self.settings.tls and not is_encrypted(client):
                return "the server did not offer TLS and [xmpp] tls requires it"
            self._went_online(client)
            reason = await self._ended
            log.warning("disconnected from the XMPP server (%s); reconnecting", reason)
            return None
        finally:
            self._went_offline("disconnected")
            client.cancel_connection_attempt()
            if client.transport:
                client.abort()

    def _went_online(self, client) -> None:
        now = utcnow()
        log.info("connected to the XMPP server as %s", client.boundjid)
        self.status.connected, self.status.connected_since, self.status.last_error = True, now, None
        self.last_heard = now
        self._discovery = asyncio.create_task(self._discovery_loop(client))

    def _went_offline(self, why: str) -> None:
        self.status.connected = False
        if self._discovery:
            self._discovery.cancel()
            self._discovery = None
        lost_at = self.last_heard or utcnow()
        for state in self.rooms.values():
            if state.task and not state.task.done():
                state.task.cancel()
            if state.phase == JOINED and state.gap_start is None:
                state.gap_start = lost_at
            if state.phase in (JOINED, JOINING):
                state.phase = LOST
            self._release(state)

    def _heard(self, stanza):
        self.last_heard = utcnow()
        return stanza

    # -- rooms -----------------------------------------------------------------

    async def _discovery_loop(self, client) -> None:
        while True:
            candidates = {room.lower() for room in self.settings.rooms}
            for service in self.settings.muc_services:
                try:
                    listed = await list_rooms(client, service)
                except DiscoError as e:
                    self._error(str(e))
                    continue
                candidates.update(room for room in listed if allowed(room, self.settings))
            candidates.update(room for room, state in self.rooms.items() if state.phase == LOST)
            for room in sorted(candidates):
                self._maybe_join(client, room)
            await asyncio.sleep(self.settings.poll_interval)

    def _maybe_join(self, client, room: str) -> None:
        state = self.rooms.setdefault(room, RoomState(room, self.settings.nick))
        if state.task and not state.task.done():
            return
        if state.phase in (NEW, LOST) or (state.phase == UNAVAILABLE and time.monotonic() >= state.retry_at):
            state.task = asyncio.create_task(self._join_guarded(client, state))

    async def _join_guarded(self, client, state: RoomState) -> None:
        try:
            await self._join(client, state)
        except Exception as e:  # noqa: BLE001 - one room's trouble must not stop the listener
            log.exception("joining %s failed", state.room)
            self._release(state)
            self._unavailable(state, f"internal error while joining: {e}")

    async def _join(self, client, state: RoomState) -> None:
        room = state.room
        state.phase = JOINING
        view = await self._view(room)
        try:
            info = await room_info(client, room)
        except DiscoError as e:
            if e.condition in ROOM_GONE:
                self._record_gone(state, view, "the service no longer has this room")
                return self._unavailable(state, "the room does not exist")
            return self._unavailable(state, str(e))
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
            self._emit(state, [ev.RoomDiscovered(room=room, occurred_at=now, recorded_at=now, name=info.name, features=features)])
        gap_start = state.gap_start or (None if first else self._restart_gap_start(room, view))
        state.holding, state.held = True, []
        outcome = await self._enter(client, state, view, self._history(view, first, mam, gap_start))
        if outcome[0] != "joined":
            self._release(state)
            if outcome[0] == "created":
                await self._undo_creation(client, state, view)
                return self._unavailable(state, "the room does not exist")
            return self._unavailable(state, outcome[1])
        try:  # history and the subject end the join (XEP-0045 §7.2.15)
            await asyncio.wait_for(state.join_done.wait(), 5)
        except asyncio.TimeoutError:
            view.joining = False
        joined_at = utcnow()
        recovered = not mam or (first and not self.settings.import_archive)
        if not recovered:
            recovered = await self._backfill(client, state, view, first, gap_start)
        if gap_start:
            self._emit(state, [self._gap(room, gap_start, joined_at, mam and recovered)], direct=True)
        self._release(state)
        state.phase, state.gap_start, state.reason = JOINED, None, None
        self._write_status()
        log.info("archiving %s%s", room, " (with MAM backfill)" if mam else "")

    async def _enter(self, client, state: RoomState, view: RoomView, history: dict) -> tuple:
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
                state.nick = f"{self.settings.nick}~{attempt + 2}"
                state.ctx = replace(state.ctx, own_nick=state.nick)
                continue
            if outcome[0] != "joined":
                view.joining = False
            return outcome
        return outcome

    def _history(self, view: RoomView, first: bool, mam: bool, gap_start: datetime | None) -> dict:
        """As little discussion history as the archive needs (XEP-0045 §7.2.14)."""
        if mam:
            return {"maxstanzas": 0}  # MAM backfill is complete and exact
        if first:
            return {} if self.settings.import_archive else {"maxstanzas": 0}
        since = view.last_message_at or gap_start or view.last_event_at
        return {"since": since.replace(microsecond=0)}  # replayed duplicates collapse in the store

    async def _backfill(self, client, state: RoomState, view: RoomView, first: bool, gap_start) -> bool:
        """Every archived message the archive lacks; False if the archive could not be read completely."""
        capture = ev.Capture.IMPORT if first else ev.Capture.BACKFILL
        after = None if first else view.last_stanza_id
        start = None if first or after else (gap_start or view.last_event_at) - OVERLAP
        try:
            await self._fetch(client, state, view, after, start, capture)
            return True
        except ArchiveQueryError as e:
            if e.condition != "item-not-found" or not after:
                log.warning("backfill of %s failed: %s", state.room, e)
                return False
        # The archive does not know our last id (expired, or another archive): read by time.
        fallback = (view.last_message_at or gap_start or view.last_event_at) - OVERLAP
        log.info("%s: archive does not know id %s, reading from %s", state.room, after, fallback)
        try:
            await self._fetch(client, state, view, None, fallback, capture)
            return True
        except ArchiveQueryError as e:
            log.warning("backfill of %s failed: %s", state.room, e)
            return False

    async def _fetch(self, client, state, view, after, start, capture) -> None:
        async for page in archive_pages(client, state.room, after=after, start=start):
            now = utcnow()
            for result in page:
                self._emit(state, translate_archived(result, state.ctx, view, now, capture), direct=True)

    def _gap(self, room: str, start: datetime, end: datetime, messages_recovered: bool) -> ev.ArchiveGap:
        if messages_recovered:
            kind, why = ev.GapKind.PRESENCE, "listener away; messages recovered from the room's archive, presence cannot be"
        else:
            kind, why = ev.GapKind.MESSAGES, "listener away and the room's archive unavailable: messages and presence may be missing"
        return ev.ArchiveGap(room=room, occurred_at=end, recorded_at=end, gap_start=start, gap_end=end, kind=kind, explanation=why)

    def _restart_gap_start(self, room: str, view: RoomView) -> datetime | None:
        """Since when nobody watched the room: the previous run's last heartbeat, or its last event."""
        start = view.last_event_at
        previous = self.previous
        if previous and room in previous.rooms_joined and (start is None or previous.updated_at > start):
            start = previous.updated_at
        return start

    async def _undo_creation(self, client, state: RoomState, view: RoomView) -> None:
        """Our join created the room (status 201): it had ceased to exist. Do not keep it alive."""
        try:
            await client.plugin["xep_0045"].destroy(state.room, reason="created by mistake by the archive listener")
        except Exception as e:  # noqa: BLE001 - the server removes an unconfigured room anyway
            log.warning("could not destroy %s after creating it: %s", state.room, e)
        self._record_gone(state, view, "the room no longer existed when the listener rejoined")

    def _record_gone(self, state: RoomState, view: RoomView, reason: str) -> None:
        if view.last_event_at is None or view.destroyed:
            return
        now = utcnow()
        base = {"room": state.room, "occurred_at": now, "recorded_at": now}
        events = [ev.RoomDestroyed(**base, reason=reason), *close_out(view, ev.LeaveReason.ROOM_DESTROYED, base)]
        self._emit(state, events, direct=True)

    def _unavailable(self, state: RoomState, reason: str) -> None:
        state.phase, state.reason = UNAVAILABLE, reason
        state.retry_at = time.monotonic() + self.settings.retry_refused_after
        self._write_status()
        if reason != state.reported:
            log.warning("cannot archive %s: %s (next try in %.0f s)", state.room, reason, self.settings.retry_refused_after)
            state.reported = reason

    async def _view(self, room: str) -> RoomView:
        if room not in self.views:
            events = await asyncio.to_thread(lambda: [r.event for r in self.store.read_room(room)])
            self.views.setdefault(room, RoomView.from_events(room, events))
        return self.views[room]

    # -- stanzas ---------------------------------------------------------------

    def _room_of(self, stanza) -> tuple[RoomState, RoomView, str | None] | None:
        try:
            room, nick = split_jid(stanza.xml.get("from"))
        except MalformedStanza:
            return None
        state = self.rooms.get(room)
        if state is None or state.ctx is None or state.phase not in (JOINING, JOINED):
            return None
        return state, self.views[room], nick

    def _on_presence(self, stanza) -> None:
        found = self._room_of(stanza)
        if found is None:
            return
        state, view, nick = found
        xml, kind, now = stanza.xml, stanza.xml.get("type"), utcnow()
        pending = state.join_future is not None and not state.join_future.done()
        if kind == "error":
            if pending and nick in (None, state.nick):
                state.join_future.set_result(("refused", *_error_of(xml)))
            return
        try:
            own = is_own_presence(xml, state.ctx)
            codes = status_codes(muc_user(xml)) if own and muc_user(xml) is not None else set()
        except MalformedStanza:
            own, codes = False, set()
        if own and pending and kind != "unavailable":
            if 210 in codes and nick:  # the service changed our nick
                state.nick, state.ctx = nick, replace(state.ctx, own_nick=nick)
            if 201 in codes:
                return state.join_future.set_result(("created",))
            self._emit(state, lost_sight(view, now))
            return state.join_future.set_result(("joined",))
        events = translate_presence(xml, state.ctx, view, now)
        if view.joining and not own and nick and kind != "unavailable":
            view.seen.add(nick)
        self._emit(state, events)
        if own and kind == "unavailable" and 303 not in codes:
            self._removed(state, xml, codes, pending)

    def _removed(self, state: RoomState, xml, codes: set[int], pending: bool) -> None:
        """The room put the listener out (kick, ban, destruction, shutdown)."""
        if pending:
            state.join_future.set_result(("refused", "removed while joining", "removed"))
            return
        x = muc_user(xml)
        destroyed = x is not None and x.find(q(MUC_USER, "destroy")) is not None
        why = "room destroyed" if destroyed else f"the listener was removed (status {sorted(codes)})"
        if not destroyed:
            state.gap_start = utcnow()
        self._release(state)
        self._unavailable(state, why)

    def _on_message(self, stanza) -> None:
        if stanza.xml.get("type") != "groupchat":
            return
        found = self._room_of(stanza)
        if found is None:
            return
        state, view, _ = found
        events = translate_message(stanza.xml, state.ctx, view, utcnow())
        if view.joining and stanza.xml.find(q(CLIENT, "subject")) is not None and stanza.xml.find(q(CLIENT, "body")) is None:
            view.joining = False  # the subject ends the join sequence
            state.join_done.set()
        # Replayed history belongs before the gap record and the rejoin's presence changes.
        self._emit(state, events, direct=any(e.capture == ev.Capture.HISTORY for e in events))

    def _emit(self, state: RoomState, events: list[ev.Event], *, direct: bool = False) -> None:
        if not events:
            return
        view = self.views[state.room]
        for event in events:
            view.apply(event)
        if state.holding and not direct:
            state.held.extend(events)
        else:
            self.writer.put(events)

    def _release(self, state: RoomState) -> None:
        state.holding = False
        held, state.held = state.held, []
        self.writer.put(held)

    # -- status ----------------------------------------------------------------

    def _written(self, recorded, attempted: int) -> None:
        self.status.events_written += len(recorded)
        if recorded:
            self.status.last_event_at = utcnow()

    def _error(self, message: str) -> None:
        self.status.last_error = message
        log.warning("%s", message)

    def joined_rooms(self) -> list[str]:
        return sorted(room for room, state in self.rooms.items() if state.phase == JOINED)

    def refused_rooms(self) -> dict[str, str]:
        return {room: s.reason or "" for room, s in self.rooms.items() if s.phase == UNAVAILABLE}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every event seen so far is in the store."""
        return self.writer.wait_idle(timeout)

    async def _status_loop(self) -> None:
        while True:
            self._write_status()
            await asyncio.sleep(1.0)

    def _write_status(self, joined: list[str] | None = None) -> None:
        self.status.updated_at = utcnow()
        self.status.rooms_joined = self.joined_rooms() if joined is None else joined
        self.status.rooms_refused = self.refused_rooms()
        if self.status_file:
            try:
                write_status(self.status_file, self.status)
            except OSError as e:
                log.warning("cannot write listener status %s: %s", self.status_file, e)

    def _read_previous_status(self) -> ListenerStatus | None:
        if not self.status_file:
            return None
        try:
            return read_status(self.status_file)
        except Exception as e:  # noqa: BLE001 - a damaged status file only costs precision
            log.warning("ignoring previous listener status: %s", e)
            return None


def _close_loop(loop: asyncio.AbstractEventLoop, client) -> None:
    """Let every task (slixmpp's send loop too) finish cancelling before the loop closes."""
    if client is not None and getattr(client, "_run_out_filters", None) is not None:
        client._run_out_filters.cancel()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    if client is not None:
        client._run_out_filters = None
    loop.close()


def _error_of(presence) -> tuple[str, str]:
    """(human reason, condition) of an error presence."""
    error = presence.find(q(CLIENT, "error"))
    condition, text = "unknown-error", None
    if error is not None:
        for child in error:
            if child.tag.startswith(f"{{{STANZAS}}}"):
                name = child.tag.split("}", 1)[1]
                if name == "text":
                    text = child.text
                else:
                    condition = name
    return (f"{condition}: {text}" if text else condition), condition


class ListenerHandle:
    """A listener running in its own thread; ``stop`` it or ``join`` it after setting the stop event."""

    def __init__(self, listener: Listener, stop: threading.Event):
        self.listener = listener
        self._stop = stop
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xmpp-listener", daemon=True)

    def _run(self) -> None:
        try:
            self.listener.run(self._stop)
        except BaseException as e:  # noqa: BLE001 - reported to whoever joins the thread
            log.exception("the listener crashed")
            self.error = e

    def start(self) -> ListenerHandle:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread; raises if the listener crashed."""
        self._thread.join(timeout)
        if self.error is not None and not self._thread.is_alive():
            raise ChatArchiveError(f"the XMPP listener stopped on an error: {self.error!r}") from self.error

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self.join(timeout)

    def joined_rooms(self) -> list[str]:
        return self.listener.joined_rooms()


def start_listener(
    settings: XmppSettings,
    store: EventStore,
    stop: threading.Event | None = None,
    *,
    status_file: Path | str | None = None,
) -> ListenerHandle:
    """Start a listener thread that archives into ``store`` until ``stop`` is set."""
    return ListenerHandle(Listener(settings, store, status_file=status_file), stop or threading.Event()).start()
