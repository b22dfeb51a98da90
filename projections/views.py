"""The views as one object: what ``chat_archive.bootstrap.open_views`` returns.

``Views(url, store)``:

- ``views.transcripts``: ``transcripts.queries.Transcripts`` (page, day, context, line);
- ``views.presence``: ``presence.queries.Presence`` (occupants_at, stays, occupancy, gaps);
- ``views.room_state_at(room, at, **options)``: ``pointintime.RoomState``;
- ``views.known_until(room=None)``: the archive's last known moment (the listener's
  heartbeat, when the composition root passes one, or the time the log's last
  event was recorded; while the views lag the log, just before the first event
  they have not applied was recorded); for a room, never later than when the listener
  stopped watching it (``presence.logic.room_known_until``); presence after it is "not known yet"
  (both need the store); ``views.last_known(room)``: that with the moment the watching stopped, for why
  (``views.rooms_last_known(rooms)``: of a page of rooms, from one read);
- ``Heartbeat(until, away)``: what the composition root's heartbeat returns (the listener's status);
- ``shown_now(known_until, now)``: the moment a room "now" is shown at (``/state`` without a moment, ``/rooms``);
- ``views.projections()``: fresh projection instances for a runner or a rebuild;
- ``views.outdated()``: the views built by older rules (``TableProjection.rules``), each with why;
  ``views.rebuilding()``: that, with whether their rebuild has begun (for `status` and ``/healthz``);
  ``views.record_unrecorded_rules()``: what a runner does first;
- ``views.close()``.

Queries read committed data only, i.e. up to the last commit of each projection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

from archive.errors import ConfigError
from archive.store import EventStore
from archive.times import utcnow

from .pointintime import RoomState, room_state_at
from .presence.logic import room_known_until
from .presence.queries import Presence
from .presence.view import PresenceProjection
from .tables import TableProjection
from .transcripts.queries import Transcripts
from .transcripts.view import TranscriptProjection
from .viewdb_backends import open_view_recorder

_REBUILD_BEGUN = "being rebuilt from the log; the old view answers until the rebuilt one is swapped in"
_REBUILD_DUE = "to be rebuilt from the log (up and project do as they start, once no purge runs); the old view answers"
_EXCLUSIVE = timedelta(microseconds=1)  # the last moment before one: times are kept to the microsecond

PROJECTION_CLASSES: dict[str, type[TableProjection]] = {
    TranscriptProjection.name: TranscriptProjection,
    PresenceProjection.name: PresenceProjection,
}


class Heartbeat(NamedTuple):
    """What the listener says it watches: one read of its status, for one answer."""

    until: datetime | None  # every room it watches is stored up to here (None: not running, or not connected)
    away: dict[str, datetime] = {}  # room -> since when it watches it no more (lost, being caught up, refused)


class LastKnown(NamedTuple):
    until: datetime | None  # the room's last known moment (``room_known_until``)
    away_since: datetime | None  # when the listener stopped watching the room; None: it watches it, or never did


def shown_now(known_until: datetime | None, now: datetime) -> datetime:
    """The moment a room is shown at when none is asked for ("now"): the archive's last known moment (the clock's
    now is always a little after it, where presence is not known yet, so a room read there shows nobody while
    people are), the clock's ``now`` for an archive that holds nothing."""
    return known_until or now


class Views:
    def __init__(
        self, url: str, store: EventStore | None = None, heartbeat: Callable[[], Heartbeat | None] | None = None
    ):
        self.url = url
        self.store = store
        self._heartbeat = heartbeat
        self.recorder, self._close = open_view_recorder(url)
        for cls in PROJECTION_CLASSES.values():
            cls.live_generation(self.recorder)
        self.presence = Presence(self.recorder)
        self.transcripts = Transcripts(self.recorder, self.presence.gap_positions)

    def projections(self, names: list[str] | None = None, *, load: bool = True) -> list[TableProjection]:
        """``load=False`` for the targets of a rebuild: they begin and finish it only."""
        names = list(PROJECTION_CLASSES) if names is None else names
        return [PROJECTION_CLASSES[name](self.recorder, load=load) for name in names]

    def outdated(self) -> dict[str, str]:
        """The views a start must rebuild from the log (``TableProjection.outdated``: built by older rules), each
        with why."""
        return {name: why for name, cls in PROJECTION_CLASSES.items() if (why := cls.outdated(self.recorder))}

    def record_unrecorded_rules(self) -> None:
        """Each view made before versions of rules were recorded recorded as built by the version its tables tell
        (``TableProjection.record_unrecorded_rules``): a runner, before it follows them."""
        for cls in PROJECTION_CLASSES.values():
            cls.record_unrecorded_rules(self.recorder)

    def rebuilding(self) -> dict[str, str]:
        """The outdated views (``outdated``), each with why and whether its rebuild from the log has begun (a
        generation is being built): until it is swapped in, the old view answers."""
        return {name: f"{why}; {_REBUILD_BEGUN if self.recorder.generations(name)[1] is not None else _REBUILD_DUE}"
                for name, why in self.outdated().items()}

    def room_state_at(self, room: str, at: datetime, *, last: LastKnown | None = None, **options) -> RoomState:
        """``last``: the caller's own read of ``last_known(room)``, if it has one (one answer, one read)."""
        last = last or self.last_known(room)
        return room_state_at(self.transcripts, self.presence, room, at, known_until=last.until,
                             away_since=last.away_since, **options)

    def known_until(self, room: str | None = None) -> datetime | None:
        """The archive's last known moment (of ``room``'s presence, if given), never later than now; None for an
        empty archive."""
        return self.last_known(room).until

    def last_known(self, room: str | None = None) -> LastKnown:
        """``known_until(room)``, and since when the listener has not watched the room (to say why)."""
        return self.rooms_last_known([room])[room]

    def rooms_last_known(self, rooms: list) -> dict[str | None, LastKnown]:
        """``last_known`` of each room, from one read of the heartbeat, the views and the log (a page of rooms)."""
        beat = self._heartbeat and self._heartbeat() or Heartbeat(None)
        until = self._known_until(beat.until)
        return {room: LastKnown(room_known_until(until, beat.away.get(room)), beat.away.get(room)) for room in rooms}

    def _known_until(self, beat: datetime | None) -> datetime | None:
        if self.store is None:
            raise ConfigError("the archive's last known moment needs the event store: open the views with one")
        # The heartbeat, then the views' positions, then the log: what is stored or committed after one of
        # these reads can only make the answer earlier than it might be, never later.
        held = min(self.recorder.position(name, self.recorder.generations(name)[0]) for name in PROJECTION_CLASSES)
        head = self.store.head()
        if held < head:
            # The views have not applied the log's newest events yet (they commit every minute, and an API host
            # may serve views another process keeps): known only until the first event they have not applied.
            # (A room they have not reached at all is not known at any moment: ``presence.logic.not_reached``.)
            return self._recorded_at(held + 1) - _EXCLUSIVE
        last = self._recorded_at(head) if head else None
        moments = [m for m in (last, beat) if m]
        return min(max(moments), utcnow()) if moments else None

    def _recorded_at(self, position: int) -> datetime:
        """When the first event at or after ``position`` was recorded."""
        return next(iter(self.store.read_log(position - 1, page_size=1))).event.recorded_at

    def close(self) -> None:
        self._close()
        self.recorder.datastore.close()

    def __enter__(self) -> Views:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
