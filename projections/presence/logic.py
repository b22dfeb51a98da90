"""Presence logic: pure functions from events to presence spans.

A *span* is a stretch of time in which one occupant was in a room with the
same nick, role, affiliation, show and status. A *stay* is the chain of spans
from joining to leaving; every span names its stay (the id of the stay's first
span). Ids come from the global positions of the events that opened the
spans (``span_id``).

- A join opens a stay; a leave (any reason) closes it. A presence, nick, role
  or affiliation change closes the current span (``end_reason="changed"``) and
  opens the next one of the same stay.
- An event about an occupant the view does not have in the room (a presence or
  nick change after a gap, say) opens a stay with ``start_reason="inferred"``.
- ``ArchiveGap``: presence in the gap is unknown. Spans open when it starts are
  closed at the gap's start with ``end_reason="gap"`` (unknown, not "left"),
  and the gap itself is kept (``Gap``) so that queries about a time inside it
  answer "unknown". Those occupants start a new stay at the gap's end
  (``start_reason="gap"``): the listener, on rejoining, reports as
  ``lost_sight`` leaves only the occupants the room no longer lists. A leave
  with reason ``lost_sight`` is unknown in the same way as a gap.
- Before the archive began: presence is known only from the first moment the
  listener was in the room, its first *live* event (the listener records a
  room's discovery when it first joins it). History from before (imported, or
  backfilled from the room's archive, which keeps messages only) is no
  witness of who was there: each room has one gap of kind ``before_archive``
  from ``EARLIEST`` to that moment (``archive_begins``), open (to ``NEVER``)
  while the room's events are all imported. A room the view holds no such gap of
  has not been reached by it yet (``not_reached``): presence there is not known.
- Known: ``unknown_why`` is the one rule of whether presence at a moment is
  known, which every view asks (the occupancy buckets ask it of an interval:
  a bucket is unknown where it overlaps a gap or passes the last known moment).
- A time earlier than the span's start (clock skew) is clamped to the start.
- One open span per nick and room: a span opened for a nick that is still
  open (a nick change onto it, say) closes the older one as ``"replaced"``.
- The stay of a transcript line (``stay_at``): the stay whose span of the line's nick holds its time, of its
  real JID where both name one. What one occupant did in one stay is what the room itself shows as one
  person's (a nick change is announced); two stays of one account are not (the widget's author keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from operator import attrgetter

import msgspec

from archive import events as ev
from archive.times import format_time

from ..messages import bare

SPANS_PER_EVENT = 100_000
UNKNOWN_ENDS = frozenset({"gap", "replaced", ev.LeaveReason.LOST_SIGHT.value})
BEFORE_ARCHIVE = "before_archive"  # the kind of a room's gap before the archive first watched it
EARLIEST = datetime.min.replace(tzinfo=timezone.utc)  # where that gap starts: every earlier moment
NEVER = datetime.max.replace(tzinfo=timezone.utc)  # where it ends while the listener has never been in the room
_LIVE = ev.Capture.LIVE


class Span(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One occupant in one room, unchanged from ``start`` to ``end`` (None: still open)."""

    id: int
    stay: int
    room: str
    nick: str
    start: ev.UtcTime
    end: ev.UtcTime | None = None
    jid: str | None = None
    occupant_id: str | None = None
    role: str | None = None
    affiliation: str | None = None
    show: str | None = None
    status: str | None = None
    start_reason: str = "joined"  # joined | inferred | gap | changed | nick_changed
    end_reason: str | None = None  # a LeaveReason value, changed, nick_changed, gap, replaced; None while open


class Gap(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A span of time in which presence is unknown."""

    id: int
    room: str
    start: ev.UtcTime
    end: ev.UtcTime
    kind: str
    explanation: str = ""


_ATTRIBUTES = ("jid", "occupant_id", "role", "affiliation", "show", "status")
_IDS = ("jid", "occupant_id")
# Each set of names' values in one call (``_given``), not a getattr each.
_VALUES = {names: attrgetter(*names) for names in (_ATTRIBUTES, _IDS)}


def step(room_open: Mapping[str, Span], position: int, event: ev.Event) -> list[Span]:
    """The spans an event closes or opens, given the room's open spans by nick.

    A closed span comes back with ``end`` set; a new one with ``end`` None.
    """
    handler = _HANDLERS.get(type(event))
    if handler is None:
        return []
    changes = handler(room_open, position, event)
    # One open span per nick: an occupant the room never told us had left
    # gives way to whoever now holds the nick.
    displaced = []
    closing = None  # the spans the event closes, once a span it opens finds its nick held (rare)
    for span in changes:
        other = room_open.get(span.nick) if span.end is None else None
        if other is not None and other.id != span.id:
            if closing is None:
                closing = {span.id for span in changes if span.end is not None}
            if other.id not in closing:
                displaced.append(_close(other, span.start, "replaced"))
    return displaced + changes if displaced else changes


def hold(room_open: dict[str, Span], changes: Iterable[Span]) -> None:
    """Bring ``room_open`` (as ``step`` takes it) up to ``changes`` (``step``'s): the spans opened held by their
    nick, the closed ones let go (unless the nick is held by another already)."""
    for span in changes:
        if span.end is None:
            room_open[span.nick] = span
        elif (held := room_open.get(span.nick)) is not None and held.id == span.id:
            del room_open[span.nick]


def span_id(position: int, seq: int = 0) -> int:
    """A span's id: the opening event's position, and a sequence number for an
    event that opens several (a gap)."""
    return position * SPANS_PER_EVENT + seq


def gap_of(position: int, event: ev.ArchiveGap) -> Gap:
    return Gap(
        id=position,
        room=event.room,
        start=event.gap_start,
        end=event.gap_end,
        kind=event.kind.value,
        explanation=event.explanation,
    )


def archive_begins(begun: Gap | None, position: int, event: ev.Event) -> Gap | None:
    """The room's ``before_archive`` gap as ``event`` (at ``position``) leaves it; None: as it was.

    ``begun``: the gap so far (None: the room's first event). The gap ends at the room's first live event;
    until one comes it is open (ends ``NEVER``), so that a room known only from imported history is never
    claimed known. Its id is the negated position of the room's first event: no archive gap's (a position).
    """
    live = event.capture == _LIVE
    if begun is None:
        return _before_archive(-position, event.room, event.occurred_at if live else NEVER)
    return _before_archive(begun.id, event.room, event.occurred_at) if live and begun.end == NEVER else None


def _before_archive(gap_id: int, room: str, end: datetime) -> Gap:
    explanation = (
        "the listener has never been in this room (its history was imported): presence in it is not known"
        if end == NEVER else
        f"the archive of this room begins at {format_time(end)}, when the listener was first in it: presence "
        "before it is not known (history imported or backfilled from the room's archive holds no presence)"
    )  # fmt: skip
    return Gap(id=gap_id, room=room, start=EARLIEST, end=end, kind=BEFORE_ARCHIVE, explanation=explanation)


def not_reached(room: str) -> Gap:
    """The gap of a room the presence view holds no beginning of: ``archive_begins`` gives every room one at
    its first event, so the view has not applied that event yet (it commits every minute), or it was built
    before this rule. Presence in it is known at no moment."""
    explanation = ("the presence view has not reached this room yet: presence in it is not known (a presence "
                   "view built before the rule of when a room's archive begins: chat-archive rebuild presence)")
    return Gap(id=0, room=room, start=EARLIEST, end=NEVER, kind=BEFORE_ARCHIVE, explanation=explanation)


def room_known_until(known_until: datetime | None, away_since: datetime | None) -> datetime | None:
    """The moment up to which a room's presence is known: the archive's last known moment ``known_until`` (the
    listener's heartbeat is one value for every room), but never later than ``away_since``, when the listener
    stopped watching the room (lost with its connection, being caught up, refused: its status' ``rooms_away``).
    Nobody saw who came or went since, however long the listener has been connected to its other rooms."""
    moments = [m for m in (known_until, away_since) if m is not None]
    return min(moments) if moments else None


def unknown_why(
    at: datetime, gaps: Iterable[Gap], known_until: datetime | None, away_since: datetime | None = None
) -> str | None:
    """None if presence at ``at`` is known, else why not: the one rule of "known" every view asks.

    Unknown after the archive's last known moment ``known_until`` (None: not limited; for a room, as
    ``room_known_until`` has it), after ``away_since``, when the listener stopped watching the room, and inside
    any of the room's ``gaps``, [start, end): archive gaps, and the time before the archive began.
    """
    if away_since is not None and at > away_since:
        return f"the listener is not watching this room since {format_time(away_since)}"
    if known_until is not None and at > known_until:
        return f"after the archive's last known moment ({format_time(known_until)})"
    for gap in gaps:
        if gap.start <= at < gap.end:
            return gap.explanation or f"archive gap ({gap.kind}): presence unknown"
    return None


def stay_at(spans: Iterable[Span], nick: str, jid: str | None, at: datetime, *, leaving: bool = False) -> int | None:
    """The stay in which the occupant holding ``nick`` (real JID ``jid``, where known) spoke, joined or took the
    nick at ``at``, or (``leaving``) left: of ``spans`` (a room's spans of ``nick`` around ``at``), the one of
    ``nick`` holding ``at`` and of no other real JID. At a span's edges (a join, a rename or a leave opens one
    and closes another at one moment), the one opening at ``at``, or for a leave the one it closes. None: in no
    stay the view knows (history from before the archive watched the room, a gap)."""
    best, rank = None, None
    for span in spans:
        end = span.end
        if span.nick != nick or span.start > at or (end is not None and end < at):
            continue
        if jid and span.jid and bare(span.jid) != bare(jid):
            continue
        # Its own edge first, then the latest opened.
        this = ((end == at) == leaving, span.start, span.id)
        if rank is None or this > rank:
            best, rank = span, this
    return None if best is None else best.stay


def end_known(span: Span) -> bool:
    return span.end_reason not in UNKNOWN_ENDS


def _close(span: Span, at, reason: str) -> Span:
    return msgspec.structs.replace(span, end=max(at, span.start), end_reason=reason)


def _open(position: int, event: ev.Event, nick: str, reason: str, attributes: dict) -> Span:
    opened = span_id(position)
    return Span(id=opened, stay=opened, room=event.room, nick=nick, start=event.occurred_at, start_reason=reason,
                **attributes)


def _change(current: Span, position: int, at, changes: dict, reason: str = "changed") -> list[Span]:
    """Close ``current`` and open its successor, if anything changes."""
    for name, value in changes.items():
        if getattr(current, name) != value:
            break
    else:
        return []
    start = max(at, current.start)
    successor = msgspec.structs.replace(
        current, id=span_id(position), start=start, end=None, start_reason=reason, end_reason=None, **changes
    )
    return [_close(current, start, reason), successor]


def _given(event: ev.Event, names: tuple[str, ...]) -> dict:
    """The attributes an event states (None means "not stated", so it changes nothing)."""
    return {name: value for name, value in zip(names, _VALUES[names](event)) if value is not None}


def _joined(room_open, position, e: ev.OccupantJoined) -> list[Span]:
    current = room_open.get(e.nick)
    if current is not None:
        return _change(current, position, e.occurred_at, _given(e, _ATTRIBUTES))
    return [_open(position, e, e.nick, "joined", _given(e, _ATTRIBUTES))]


def _left(room_open, position, e: ev.OccupantLeft) -> list[Span]:
    current = room_open.get(e.nick)
    return [] if current is None else [_close(current, e.occurred_at, e.reason.value)]


def _presence(room_open, position, e: ev.PresenceChanged) -> list[Span]:
    current = room_open.get(e.nick)
    changes = {"show": e.show, "status": e.status, **_given(e, _IDS)}
    if current is None:
        return [_open(position, e, e.nick, "inferred", {k: v for k, v in changes.items() if v is not None})]
    return _change(current, position, e.occurred_at, changes)


def _nick(room_open, position, e: ev.NickChanged) -> list[Span]:
    current = room_open.get(e.old_nick)
    if current is None:
        return [_open(position, e, e.new_nick, "inferred", _given(e, _IDS))]
    return _change(current, position, e.occurred_at, {"nick": e.new_nick}, "nick_changed")


def _role(room_open, position, e: ev.RoleChanged) -> list[Span]:
    current = room_open.get(e.nick)
    return [] if current is None else _change(current, position, e.occurred_at, {"role": e.role})


def _affiliation(room_open, position, e: ev.AffiliationChanged) -> list[Span]:
    current = room_open.get(e.nick) if e.nick else None
    return [] if current is None else _change(current, position, e.occurred_at, {"affiliation": e.affiliation})


def _destroyed(room_open, position, e: ev.RoomDestroyed) -> list[Span]:
    return [_close(span, e.occurred_at, ev.LeaveReason.ROOM_DESTROYED.value) for span in room_open.values()]


def _gap(room_open, position, e: ev.ArchiveGap) -> list[Span]:
    # Who was there before the gap and is still open was listed again by the room
    # on rejoining (the listener reports only who did not come back): a new stay
    # from the gap's end. Spans opened at or after the gap's end are already that.
    changes = []
    before = [span for span in room_open.values() if span.start < e.gap_end]
    for seq, span in enumerate(sorted(before, key=lambda s: s.id)):
        new_id = span_id(position, seq)
        after = msgspec.structs.replace(span, id=new_id, stay=new_id, start=e.gap_end, start_reason="gap")
        changes += [_close(span, e.gap_start, "gap"), after]
    return changes


_HANDLERS = {
    ev.OccupantJoined: _joined,
    ev.OccupantLeft: _left,
    ev.PresenceChanged: _presence,
    ev.NickChanged: _nick,
    ev.RoleChanged: _role,
    ev.AffiliationChanged: _affiliation,
    ev.RoomDestroyed: _destroyed,
    ev.ArchiveGap: _gap,
}
