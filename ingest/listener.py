"""The XMPP listener: stays connected, joins rooms, turns what it sees into archive events.

One asyncio loop (slixmpp's) in a thread of its own; the store is written by a
``BatchWriter`` thread. The listener keeps one connection up (reconnecting with
backoff), polls service discovery for rooms, and hands every room to
``joining.join_room``; ``rooms.Rooms`` turns the rooms' stanzas into events.
Per room:

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

The listener holds the store's ``listener`` lease (``archive.lease``) while it
runs: a second listener on the same store is refused, and one that went a lease's
length without renewing it (paused, the store out of reach) appends nothing until
it has (another may have taken over: both would store the same presence). It starts
from the status the lease's last holder left in the store, wherever that ran
(``status.latest_status``), and keeps its own there beside its status file. Store
errors are retried by the writer and reported (``archive.health``) in the status;
when too many events wait for the store, reading from the server pauses (back-pressure): the session and the
rooms are kept meanwhile, as nothing is asked of the server then and no answer's time runs while reading is
paused (``flow``), the keepalive's included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from archive.errors import StoreError
from archive.health import Health
from archive.lease import LeaseLost, Renewer, StoreLease
from archive.store import EventStore
from archive.times import format_time, utcnow

from .admin_rooms import list_rooms_as_admin
from .catchup import open_gaps
from .client import (
    DiscoError, UnnamableRooms, allowed, close, is_encrypted, list_rooms, make_client, server_address,
)
from .clock import SKEW_UNSAFE, Clock, measure_offset, skew_problem
from .flow import answered, keep_alive
from .joining import JOIN_TIMEOUT, join_room
from .rooms import GONE, LOST, NEW, UNAVAILABLE, Rooms
from .settings import XmppSettings
from .status import LEASE, ListenerStatus, keep_interval, last_status, read_status, write_status
from .writer import BatchWriter

log = logging.getLogger(__name__)


class Listener:
    """Run with ``run(stop)`` in a thread of its own (see ``start_listener``)."""

    def __init__(
        self,
        settings: XmppSettings,
        store: EventStore,
        *,
        status_file: Path | str | None = None,
        health: Health | None = None,
        write_queue_limit: int = 50_000,
        clock: Clock = utcnow,
    ):
        self.settings = settings
        self.clock = clock  # the listener's time (``ingest.clock``): injected, as a test sets it off the server's
        self.store = store
        self.status_file = Path(status_file) if status_file else None
        now = self.clock()
        self.lease = StoreLease(store, LEASE, ttl=settings.lease_seconds)
        self.status = ListenerStatus(
            jid=settings.jid, pid=os.getpid(), host=socket.gethostname(), holder=self.lease.holder, started_at=now,
            updated_at=now,
        )
        self.health = health if health is not None else Health()
        self._lease_report = self.health.reporter("listener lease")
        self.writer = BatchWriter(
            store,
            on_written=self._written,
            on_error=self._error,
            on_health=self.health.reporter("listener writer"),
            on_full=self._write_queue_full,
            high_water=write_queue_limit,
            fence=self.lease.refusal,
            under=self.lease.fence,
        )
        self._renewer = Renewer(self.lease, on_lost=self._lease_lost, on_failure=self._lease_report)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fatal: BaseException | None = None
        self.rooms = Rooms(settings, store, self.writer, on_change=self._write_status, clock=clock)
        # The status into the store from a thread of its own, one write at a time: the loop never waits on the store.
        self._status_keeper = ThreadPoolExecutor(1, thread_name_prefix="listener-status")
        self._status_kept: Future | None = None
        self._keep_due, self._kept_at = True, 0.0  # whether the status is owed to the store; when last handed over
        self._keeping_problem: str | None = None
        self.client = None
        self._session: asyncio.Future | None = None
        self._ended: asyncio.Future | None = None
        self.last_heard: datetime | None = None
        self._session_tasks: list[asyncio.Task] = []  # discovery and keepalive of the connection's session
        self._unnamable = UnnamableRooms()

    # -- lifecycle -------------------------------------------------------------

    def acquire(self) -> None:
        """Take the store's listener lease (``LeaseHeld`` naming the holder), then start from what its last holder
        left: which rooms it watched until when, and which it was away from since when."""
        self.lease.acquire()
        self.rooms.inherit(self._read_previous_status())

    def run(self, stop: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(stop))
        finally:
            _close_loop(loop)

    async def _main(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer.start()
        self.client = self._make_client()
        self._renewer.start()
        tasks = [asyncio.create_task(self._connection_loop()), asyncio.create_task(self._status_loop())]
        try:
            while not stop.is_set() and self._fatal is None:
                await asyncio.sleep(0.05)
        finally:
            await self._shutdown(tasks)
        if self._fatal is not None:
            raise self._fatal
        if self.writer.lost:
            raise StoreError(
                f"the store did not take the last events before the stop ({self.writer.lost} given up): the next "
                f"start records a gap from {format_time(self.status.stored_until)} and reads the rooms' archives again"
            )

    async def _shutdown(self, tasks: list[asyncio.Task]) -> None:
        # The last status names the rooms watched until now, and those unwatched since when, for the next run's gap
        # records: taken before the stop makes every room lost (the gap records the store refuses are added after).
        watched, away, watched_until = self.joined_rooms(), self.rooms.away(unstored=False), self.clock()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._went_offline("listener stopped")  # the connection loop, cancelled, has closed the client
        self.writer.stop()
        away = open_gaps(away, {}, (), self.rooms.unstored_gaps)
        self.status.stopped = True
        self._write_status(watched, away, watched_until)
        self._status_keeper.shutdown(wait=True)  # the last status is in the store (if it takes it) before the release
        self._renewer.stop()  # renewed until now: the writer's last appends were made under it
        try:
            self.lease.release()
        except StoreError as e:
            log.warning("could not release the store's listener lease (it expires by itself): %s", e)

    def _make_client(self):
        client = make_client(self.settings)
        client.add_event_handler("session_start", lambda _: self._settle("session", True))
        for name in ("disconnected", "connection_failed"):
            client.add_event_handler(name, lambda e, name=name: self._settle("ended", f"{name}: {e}"))
        client.add_event_handler("failed_all_auth", lambda _: self._settle("ended", self._auth_failure(client)))
        client.add_filter("in", self._incoming)
        return client

    def _auth_failure(self, client) -> str:
        if self.settings.tls and not is_encrypted(client):
            return "the server did not offer TLS and [xmpp] tls requires it: no credentials sent"
        return f"authentication as {self.settings.jid} failed (wrong password or unsupported mechanism)"

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
            await close(client)

    def _went_online(self, client) -> None:
        now = self.clock()
        log.info("connected to the XMPP server as %s", client.boundjid)
        self.status.connected, self.status.connected_since, self.status.last_error = True, now, None
        self.last_heard = now
        self._hold_input()  # a new connection: its input held back too while the store is behind, before anything is asked
        self._session_tasks = [
            asyncio.create_task(self._discovery_loop(client)), asyncio.create_task(self._keepalive(client)),
        ]

    def _went_offline(self, why: str) -> None:
        self.status.connected = False
        for task in self._session_tasks:
            task.cancel()
        self._session_tasks = []
        self.rooms.went_offline(self.last_heard or self.clock())

    async def _keepalive(self, client) -> None:
        settings = self.settings
        reason = await keep_alive(client, self.rooms.flow, settings.keepalive_interval, settings.keepalive_timeout)
        self._settle("ended", reason)  # the connection loop closes it and connects again

    def _incoming(self, stanza):
        self.last_heard = self.clock()
        return None if self.rooms.take(stanza) else stanza

    async def _measure_clock(self, client) -> None:
        offset, unknown = await measure_offset(client, self.clock, flow=self.rooms.flow)
        self.status.clock_offset, self.status.clock_unknown = offset, unknown
        self.rooms.clock_offset = timedelta(seconds=offset) if offset is not None else None
        problem = skew_problem(offset)
        if problem and abs(offset) >= SKEW_UNSAFE.total_seconds():
            log.error("%s", problem)
        elif problem:
            log.warning("%s", problem)
        elif unknown:
            log.info("clock offset to the XMPP server unknown: %s", unknown)

    # -- discovery -------------------------------------------------------------

    async def _discovery_loop(self, client) -> None:
        # Rooms the previous run was archiving, or owed a gap, are checked once, listed or not:
        # one destroyed while nobody watched is recorded as destroyed.
        unlisted = self._previously_watched()
        await self.rooms.flow.reading()  # nothing is asked while the answers could not be read
        await self._measure_clock(client)  # before any catch-up: its reconciliation allows for the offset
        while True:
            await self.rooms.flow.reading()
            listed: set[str] = set()
            for service in self.settings.muc_services:
                try:
                    rooms = await answered(self.rooms.flow, lambda: list_rooms(client, service))
                except DiscoError as e:
                    if str(e) != self.status.last_error:  # once, not every poll
                        self._error(str(e))
                    continue
                listed.update(room for room in rooms if allowed(room, self.settings))
                if self.settings.admin_discovery:
                    hidden = await list_rooms_as_admin(client, service)
                    listed.update(room for room in hidden or () if allowed(room, self.settings))
            # Rooms refused or put out are tried again (``retry_refused_after``) though no longer listed: one made
            # hidden, or destroyed, is then found refusing still, or gone.
            candidates = listed | {room.lower() for room in self.settings.rooms} | set(self.rooms.lost()) | unlisted
            candidates |= set(self.rooms.refused())
            unlisted = set()
            for room in sorted(candidates):
                if not self._unnamable.skips(room):
                    self._maybe_join(client, room, listed=room in listed)
            await asyncio.sleep(self.settings.poll_interval)

    def _previously_watched(self) -> set[str]:
        return {room for room in self.rooms.inherited if allowed(room, self.settings) and room not in self.rooms.states}

    def _maybe_join(self, client, room: str, *, listed: bool) -> None:
        state = self.rooms.state(room)
        if state.task and not state.task.done():
            return
        retry = time.monotonic() >= state.retry_at
        if state.phase in (NEW, LOST) or (state.phase == UNAVAILABLE and retry) or (state.phase == GONE and listed):
            state.task = asyncio.create_task(join_room(self.rooms, client, state))

    # -- status ----------------------------------------------------------------

    def _written(self, recorded, attempted: int) -> None:
        self.rooms.written(recorded)
        self.status.events_written += len(recorded)
        if recorded:
            self.status.last_event_at = self.clock()

    def _write_queue_full(self, _full: bool = True) -> None:
        """Back-pressure: stop reading from the server while the store is behind (any thread; only schedules)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._hold_input)

    def _hold_input(self) -> None:
        """Read from the server or not, as the writer is now (in the loop: the last change always wins)."""
        paused = self.writer.full
        transport = self.client.transport if self.client else None
        if transport is not None:
            transport.pause_reading() if paused else transport.resume_reading()
        self.rooms.flow.set_paused(paused)
        self.status.input_paused = paused

    def _lease_lost(self, error: LeaseLost) -> None:
        """Another listener took the lease over (in the renewer's thread): the loop stops (``_main`` polls)."""
        log.error("%s: stopping, another listener archives this store now", error)
        self._fatal = error

    def _error(self, message: str) -> None:
        self.status.last_error = message
        log.warning("%s", message)

    def joined_rooms(self) -> list[str]:
        return self.rooms.joined()

    def refused_rooms(self) -> dict[str, str]:
        return self.rooms.refused()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every event seen so far is in the store."""
        return self.writer.wait_idle(timeout)

    async def _status_loop(self) -> None:
        while True:
            self._write_status(changed=False)
            await asyncio.sleep(1.0)

    def _write_status(
        self, joined: list[str] | None = None, away: dict[str, datetime] | None = None,
        watched_until: datetime | None = None, *, changed: bool = True,
    ) -> None:
        """The status into its file, and into the store when the rooms ``changed`` (the default: as ``Rooms`` calls
        it) or every ``keep_interval`` (a heartbeat: one write of the whole status a second would be most of the
        store's load from an idle listener)."""
        # Runs in the loop thread, which alone puts events: nothing is put meanwhile.
        self.status.updated_at = now = self.clock()
        self.status.stored_until = self.writer.stored_until(watched_until or now)
        self.status.rooms_joined = self.joined_rooms() if joined is None else joined
        self.status.rooms_away = self.rooms.away() if away is None else away
        self.status.rooms_refused = self.refused_rooms()
        self.status.write_queue = self.writer.pending
        self.status.parts = self.health.snapshot()
        if self.status_file:
            try:
                write_status(self.status_file, self.status)
            except OSError as e:
                log.warning("cannot write listener status %s: %s", self.status_file, e)
        self._keep_due = self._keep_due or changed or time.monotonic() >= self._kept_at + keep_interval(self.lease.ttl)
        idle = self._status_kept is None or self._status_kept.done()
        if (self._keep_due and idle) or self.status.stopped:  # else: a later second's
            with contextlib.suppress(RuntimeError):  # the keeper shut down: the stop's status is the last
                self._status_kept = self._status_keeper.submit(self._keep_status, msgspec.json.encode(self.status))
                self._keep_due, self._kept_at = False, time.monotonic()

    def _keep_status(self, status: bytes) -> None:
        """The status into the store, as the lease's note (in ``_status_keeper``'s thread)."""
        try:
            problem = None if self.lease.write_note(status) else "another listener holds the store's lease"
        except StoreError as e:
            problem = str(e)
        if problem and problem != self._keeping_problem:
            log.warning("cannot keep the listener status in the store: %s", problem)
        elif self._keeping_problem and not problem:
            log.info("the listener status is kept in the store again")
        self._keeping_problem = problem

    def _read_previous_status(self) -> ListenerStatus | None:
        in_file = None
        if self.status_file:
            try:
                in_file = read_status(self.status_file)
            except Exception as e:  # noqa: BLE001 - a damaged status file only costs precision
                log.warning("ignoring previous listener status: %s", e)
        status, unread = last_status(in_file, self.store)  # the store unread: the start fails, as the lease's would
        if unread:
            log.warning("ignoring previous listener status: %s", unread)
        return status


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Let every task (joins, slixmpp's handlers) finish cancelling before the loop closes."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
