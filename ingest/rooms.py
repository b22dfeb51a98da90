"""The rooms the listener knows, and what it does with the stanzas they send.

Every room has a ``RoomState`` (where the listener stands with it) and a
``RoomView`` (what the archive knows of it). Presences and groupchat messages
of joined rooms are translated into events, applied to the view and handed to
the writer, or held while the room is being backfilled so that its stream
stays in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from archive import events as ev
from archive.store import EventStore
from archive.times import utcnow

from .catchup import Anchor, CatchUp, found_gone, gap_event, open_gaps, recovered_message, written_on_interruption
from .clock import Clock
from .flow import InputFlow
from .roomview import RoomView
from .settings import XmppSettings
from .status import ListenerStatus, unwatched
from .translate_message import translate_message
from .translate_presence import is_own_presence, lost_sight, translate_presence
from .writer import BatchWriter
from .xmlutil import CLIENT, MUC_USER, STANZAS, MalformedStanza, RoomContext, muc_user, q, split_jid, status_codes

log = logging.getLogger(__name__)

NEW, JOINING, JOINED, LOST, UNAVAILABLE = "new", "joining", "joined", "lost", "unavailable"
GONE = "gone"  # the room no longer exists; joined again only if service discovery lists it again
_MESSAGE, _PRESENCE, _SUBJECT, _BODY = (q(CLIENT, tag) for tag in ("message", "presence", "subject", "body"))
_MUC_USER_X = q(MUC_USER, "x")


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
    anchor: Anchor | None = None  # where the unfinished catch-up starts (see ``catchup``)
    mam: bool = False  # the room serves an archive: messages held by an unfinished catch-up can be re-read
    recovered_base: int = 0  # the room's ``Rooms.recovered`` when its catch-up began
    reason: str | None = None  # why the room cannot be entered
    reported: str | None = None  # the last reason logged
    retry_at: float = 0.0


class Rooms:
    def __init__(
        self,
        settings: XmppSettings,
        store: EventStore,
        writer: BatchWriter,
        *,
        previous: ListenerStatus | None = None,
        on_change: Callable[[], None],
        clock: Clock = utcnow,
    ):
        self.settings = settings
        self.clock = clock  # stamps what is received live (the listener's clock: ``ingest.clock``)
        # The server's clock less ``clock``, asked at connect (None: unknown): ``catchup.store_read_start``.
        self.clock_offset: timedelta | None = None
        self.flow = InputFlow()  # reading from the server paused (back-pressure) or not: ``flow.answered``
        self.store = store
        self.writer = writer
        self.inherit(previous)
        self.changed = on_change  # the status should be written again
        self.states: dict[str, RoomState] = {}
        self.views: dict[str, RoomView] = {}
        self.recovered: Counter[str] = Counter()  # per room: messages stored from its archive or history
        self.unstored_gaps: dict[str, datetime] = {}  # room -> start of its gap record, handed to the writer, not stored
        self._once_written: set[str] | None = None

    def inherit(self, previous: ListenerStatus | None) -> None:
        """Start from the previous run's last status (the last holder of the store's lease, read once this run
        holds it)."""
        self.previous = previous
        self.inherited = unwatched(previous)  # room -> since when the previous run had not watched it

    def written(self, recorded: list[ev.Recorded]) -> None:
        """Count what the store took of catch-ups (called from the writer's thread)."""
        for r in recorded:
            if recovered_message(r.event):
                self.recovered[r.event.room] += 1
            elif isinstance(r.event, ev.ArchiveGap) and self.unstored_gaps.get(r.event.room) == r.event.gap_start:
                del self.unstored_gaps[r.event.room]

    def state(self, room: str) -> RoomState:
        return self.states.setdefault(room, RoomState(room, self.settings.nick))

    def joined(self) -> list[str]:
        return sorted(room for room, state in self.states.items() if state.phase == JOINED)

    def refused(self) -> dict[str, str]:
        return {room: s.reason or "" for room, s in self.states.items() if s.phase == UNAVAILABLE}

    def away(self, *, unstored: bool = True) -> dict[str, datetime]:
        """Since when each room not watched now has gone unwatched (for the status: see ``open_gaps``);
        counting the gap records not stored yet unless not ``unstored``."""
        away = {room: s.gap_start for room, s in self.states.items() if s.phase in (NEW, JOINING, LOST, UNAVAILABLE)}
        settled = [room for room, s in self.states.items() if s.phase in (JOINED, GONE)]
        return open_gaps(self.inherited, away, settled, self.unstored_gaps.copy() if unstored else None)

    def emit_gap(self, state: RoomState, events: list[ev.Event]) -> None:
        """Write a gap record (with the events that go with it): its room stays away until the store has it."""
        for event in events:
            if isinstance(event, ev.ArchiveGap):
                self.unstored_gaps[state.room] = event.gap_start
        self.emit(state, events, direct=True)

    def lost(self) -> list[str]:
        return [room for room, state in self.states.items() if state.phase == LOST]

    def went_offline(self, lost_at: datetime) -> None:
        """The connection ended: every room joined is lost from ``lost_at`` on."""
        for state in self.states.values():
            if state.task and not state.task.done():
                state.task.cancel()
            if state.phase == JOINED and state.gap_start is None:
                state.gap_start = lost_at
            if state.phase == JOINING:
                self.abandon(state)
            else:
                self.release(state)
            if state.phase in (JOINED, JOINING):
                state.phase = LOST

    def take(self, stanza) -> bool:
        """Handle a presence or groupchat message of a room being archived.

        False for any other stanza (slixmpp's handlers get it). Called as an
        incoming filter, before slixmpp matches its many handlers: the hot path.
        """
        xml = stanza.xml
        if xml.tag == _MESSAGE and (xml.get("type") == "groupchat" or xml.find(_MUC_USER_X) is not None):
            handle = self._on_message  # groupchat, or the room's notices (not MAM results: those pass)
        elif xml.tag == _PRESENCE:
            handle = self._on_presence
        else:
            return False
        try:
            room, nick = split_jid(xml.get("from"))
        except MalformedStanza:
            return False
        state = self.states.get(room)
        if state is None or state.ctx is None or state.phase not in (JOINING, JOINED):
            return False
        try:
            handle(state, self.views[room], nick, xml)
        except Exception:  # noqa: BLE001 - a stanza we cannot handle must not end the session
            log.exception("skipping a stanza from %s that could not be handled", room)
        return True

    def _on_presence(self, state: RoomState, view: RoomView, nick: str | None, xml) -> None:
        kind, now = xml.get("type"), self.clock()
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
            self.emit(state, lost_sight(view, now))
            return state.join_future.set_result(("joined",))
        events = translate_presence(xml, state.ctx, view, now)
        if view.replaying and not own and nick and kind != "unavailable":
            view.seen.add(nick)
        self.emit(state, events)
        if own and kind == "unavailable" and 303 not in codes:
            self._removed(state, xml, codes, pending, now)

    def _removed(self, state: RoomState, xml, codes: set[int], pending: bool, now: datetime) -> None:
        """The room put the listener out (kick, ban, destruction, shutdown), joined or still catching up.

        Out while catching up (its join answered, its catch-up not done), the join ends here: left running it
        would mark the room joined, never to be tried again. Its time away has not been caught up: it stays the
        gap's start, with the anchor, for the next attempt (a kick or ban), or is recorded now (a destruction).
        """
        if pending:
            state.join_future.set_result(("refused", "removed while joining", "removed"))
            return
        catching_up = state.phase == JOINING
        if catching_up:
            if state.task is not None:
                state.task.cancel()
            self.views[state.room].replaying = False  # no room replays history to one it put out
        x = muc_user(xml)
        if x is not None and x.find(q(MUC_USER, "destroy")) is not None:
            if catching_up and state.gap_start is not None:
                self.emit_gap(state, [self._cut_off_by_destruction(state, now)])
            self.release(state)  # its archive went with the room: what was held is all there is of it
            state.phase, state.gap_start, state.anchor = GONE, None, None
            self.changed()
            return
        if catching_up:
            self.abandon(state)
        else:
            self.release(state)
        state.gap_start = state.gap_start or now
        self.unavailable(state, f"the listener was removed (status {sorted(codes)})")

    def _cut_off_by_destruction(self, state: RoomState, now: datetime) -> ev.ArchiveGap:
        """The gap record of time away whose catch-up the room's destruction (at ``now``) cut off."""
        # What the store took of the catch-up so far: its messages still queued are not counted.
        recovered = self.recovered[state.room] - state.recovered_base
        problem = "the room was destroyed, with its archive, before the catch-up completed"
        return gap_event(state.room, state.gap_start, now, CatchUp(mam=state.mam, recovered=recovered, problem=problem))

    def _on_message(self, state: RoomState, view: RoomView, nick: str | None, xml) -> None:
        events = translate_message(xml, state.ctx, view, self.clock())
        if view.replaying and xml.find(_SUBJECT) is not None and xml.find(_BODY) is None:
            view.replaying = False  # the subject ends the join sequence, however late (joining.await_subject)
            state.join_done.set()
        # Replayed history belongs before the gap record and the rejoin's presence changes.
        self.emit(state, events, direct=any(e.capture == ev.Capture.HISTORY for e in events))

    def emit(self, state: RoomState, events: list[ev.Event], *, direct: bool = False) -> None:
        """Apply events to the room's view and write them (or hold them, unless ``direct``)."""
        if not events:
            return
        view = self.views[state.room]
        for event in events:
            view.apply(event)
        if state.holding and not direct:
            state.held.extend(events)
        else:
            self.writer.put(events)

    def release(self, state: RoomState) -> None:
        """Write the held events and stop holding."""
        state.holding = False
        held, state.held = state.held, []
        self.writer.put(held)

    def abandon(self, state: RoomState) -> None:
        """The catch-up ends unfinished: write the held events, except messages the archive will give again.

        The next catch-up starts from the same anchor and reads them from the room's
        archive; stored now, they would sit after a span not yet caught up.
        """
        if state.mam:
            state.held = written_on_interruption(state.held)
        self.release(state)

    def unavailable(self, state: RoomState, reason: str) -> None:
        """The room cannot be entered: say why once, try again after ``retry_refused_after``."""
        state.phase, state.reason = UNAVAILABLE, reason
        state.retry_at = time.monotonic() + self.settings.retry_refused_after
        self.changed()
        if reason != state.reported:
            log.warning("cannot archive %s: %s (next try in %.0f s)", state.room, reason, self.settings.retry_refused_after)
            state.reported = reason

    def gone(self, state: RoomState, view: RoomView, reason: str, gap_start: datetime | None) -> None:
        """The service says the room does not exist: record an archived room as destroyed (see ``found_gone``)."""
        if view.last_event_at is not None and not view.destroyed:
            self.emit_gap(state, found_gone(view, reason, self.clock(), gap_start))
            log.info("%s: %s; recorded as destroyed", state.room, reason)
        if state.room in {room.lower() for room in self.settings.rooms}:
            self.unavailable(state, "the room does not exist")  # configured: the operator should know
        else:
            state.phase = GONE

    async def view(self, room: str) -> RoomView:
        """The room's view, folded from its archived events the first time it is needed."""
        if room not in self.views:
            events = await asyncio.to_thread(lambda: [r.event for r in self.store.read_room(room)])
            view = RoomView.from_events(room, events)
            if not events:
                view.purged = room in await self._streams_once_written()
            self.views.setdefault(room, view)
        return self.views[room]

    async def _streams_once_written(self) -> set[str]:
        """The streams the store holds or held events of: a purge keeps a stream's head past its deleted events.

        Read once: a stream purged while the listener runs is one whose view it holds already."""
        if self._once_written is None:
            heads = await asyncio.to_thread(self.store.chain_heads)
            self._once_written = {head.stream for head in heads}
        return self._once_written


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
