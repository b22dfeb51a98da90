"""Where a room's catch-up starts, and what it proved: the pure rules, without I/O.

The catch-up after time away (disconnect, restart, removal) reads the room's
archive (MAM) from an **anchor**: what the archive had stored of the room
before the listener went away. Live events that arrive while the room is being
rejoined and caught up are kept (held, then written, duplicates collapsing in
the store) but never move the anchor: the anchor is taken once, when the
catch-up begins, and kept until a catch-up completes, however many attempts
that takes. A catch-up that is interrupted writes none of the live messages it
held that the room's archive holds too (``written_on_interruption``), so the
store never holds such a message after a span it has not caught up, and an
anchor folded from the store after a restart is sound too.

After every catch-up the room's archive is read again over the span away and
compared, stanza-id by stanza-id, with what is archived (``compare``); the gap
event then says how many messages were recovered and whether anything may be
missing (``gap_event``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from archive import events as ev
from archive.times import format_time
from archive.wording import counted

from .roomview import RoomView
from .translate_presence import close_out

OVERLAP = timedelta(seconds=60)  # re-read this much before a time bound; duplicates collapse in the store
MESSAGE_EVENTS = (ev.MessagePosted, ev.MessageCorrected, ev.MessageRetracted)


@dataclass(frozen=True)
class Anchor:
    """The newest message the archive holds of a room (with everything before it), and its newest event."""

    stanza_id: str | None = None
    message_at: datetime | None = None
    event_at: datetime | None = None

    @classmethod
    def of(cls, view: RoomView) -> Anchor:
        return cls(view.last_stanza_id, view.last_message_at, view.last_event_at)


def first_catch_up(view: RoomView) -> bool:
    """Whether the room's next catch-up is its first (the whole archive or history, as ``import_archive`` says).

    A room stays "first" until its first join completes: a join refused, or cut off while importing, leaves
    the ``RoomDiscovered`` it wrote and nothing that says the import happened (kept in the store, so a restart
    knows it too). Reading only from the failed attempt on would skip the room's whole earlier archive.
    A room whose events were all purged is no first: imported again, what expired would come back.
    """
    return (view.last_event_at is None and not view.purged) or view.first_join_pending


def restart_gap_start(
    last_event_at: datetime | None, watched_until: datetime | None, away_since: datetime | None
) -> datetime | None:
    """Since when nobody watched a room, at a start: since the previous run's gap of it began (``away_since``: it
    was away, catching up, refused), else until when it stored all it saw of a room it watched (``watched_until``),
    else since the room's last event.

    The last event is no measure once a catch-up was cut off: what it stored of the room's archive or history is
    recorded when it was read, after the time away it belongs to; a gap from there would leave that time out.
    """
    if away_since is not None:
        return away_since
    if watched_until is not None and (last_event_at is None or watched_until > last_event_at):
        return watched_until
    return last_event_at


def open_gaps(
    inherited: Mapping[str, datetime],
    away: Mapping[str, datetime | None],
    settled: Iterable[str],
    unstored: Mapping[str, datetime] | None = None,
) -> dict[str, datetime]:
    """Since when each room nobody watches has gone unwatched, for the status (the next start's gaps begin there).

    ``away``: the rooms not watched now (lost, being joined, refused), with their gap's start (None: none known
    yet); ``settled``: the rooms watched again or found gone; ``inherited``: the previous run's (``unwatched``),
    kept for every room not settled and without a start of its own yet, so a stop before a room is taken up
    again (or while the server is unreachable) forgets nothing. ``unstored``: gap records handed to the store
    and not stored yet, by room: a gap is open until its record is stored, watched again or not.
    """
    settled = set(settled)
    gaps = {room: start for room, start in inherited.items() if room not in settled}
    gaps.update((room, start) for room, start in away.items() if start is not None)
    for room, start in (unstored or {}).items():
        gaps[room] = min(start, gaps.get(room, start))
    return gaps


def begin_catch_up(kept: Anchor | None, view: RoomView) -> Anchor:
    """The anchor of a catch-up about to start: the one kept from an unfinished catch-up, else the view's.

    Call it before the join is sent: from then on live events change the view.
    """
    return kept if kept is not None else Anchor.of(view)


@dataclass(frozen=True)
class ArchiveRead:
    """A MAM query: after the archive id ``after``, or from ``start``, or everything (both None)."""

    after: str | None = None
    start: datetime | None = None


def first_read(anchor: Anchor, first: bool, gap_start: datetime | None) -> ArchiveRead:
    """What to read of the room's archive to catch up."""
    if first:
        return ArchiveRead()
    if anchor.stanza_id:
        return ArchiveRead(after=anchor.stanza_id)
    return ArchiveRead(start=_first_known(gap_start, anchor.event_at) - OVERLAP)


def fallback_read(anchor: Anchor, gap_start: datetime | None) -> ArchiveRead:
    """The archive does not know the anchor's id (expired, or another archive): read by time."""
    return ArchiveRead(start=_first_known(anchor.message_at, gap_start, anchor.event_at) - OVERLAP)


def reconcile_start(anchor: Anchor, first: bool, gap_start: datetime | None) -> datetime | None:
    """Where the span to confirm begins: the archive's last message (or the gap), less the overlap.

    In whole seconds, as the room's archive reads a start (Prosody drops the fraction, and stamps in whole
    seconds): it gives messages stamped earlier within the start's second, which the store must be read for too.
    """
    if first:
        return None
    return (_earliest(anchor.message_at, gap_start, anchor.event_at) - OVERLAP).replace(microsecond=0)


def store_read_start(start: datetime | None, offset: timedelta | None) -> datetime | None:
    """Where the reconciliation reads the store from, for the span the room's archive gives from ``start``.

    The archive reads by its stamps, on the server's clock; the store holds live copies at their receive time, on
    the listener's: one ``offset`` behind (the server's clock less the listener's, ``ingest.clock``) was stamped
    that much earlier. Read back by its size whichever clock is ahead (a copy found too many is no harm; one not
    found counts as missing and is said to be lost). Unknown: as if the clocks agreed.
    """
    if start is None or offset is None:
        return start
    return start - abs(offset)


def archive_end(joined_at: datetime, offset: timedelta | None) -> datetime:
    """Up to when the reconciliation reads the room's archive: the join (on the listener's clock) as the server's
    clock tells it (``offset``: the server's less the listener's; unknown: as if they agreed). A listener behind
    would otherwise leave out the span's last minutes, and find an empty comparison complete."""
    return joined_at + offset if offset is not None else joined_at


def _earliest(*moments: datetime | None) -> datetime:
    return min(m for m in moments if m is not None)


def _first_known(*moments: datetime | None) -> datetime:
    return next(m for m in moments if m is not None)


def history_request(anchor: Anchor, first: bool, mam: bool, import_archive: bool, gap_start: datetime | None) -> dict:
    """As little discussion history as the archive needs (XEP-0045 §7.2.14)."""
    if mam:
        return {"maxstanzas": 0}  # MAM backfill is complete and exact
    if first:
        return {} if import_archive else {"maxstanzas": 0}
    since = anchor.message_at or gap_start or anchor.event_at
    return {"since": since.replace(microsecond=0)}  # replayed duplicates collapse in the store


def written_on_interruption(held: list[ev.Event]) -> list[ev.Event]:
    """What an interrupted catch-up writes of the live events it held: all but the messages the room's archive holds.

    Those carry the room's stanza-id: the next catch-up reads them again after the anchor. The room archives only
    some messages (Prosody: a body, a store hint, encryption, a chat marker), the rest get no stanza-id: a body-less
    retraction is never given again, and dropped here it would be lost.
    """
    return [e for e in held if not (isinstance(e, MESSAGE_EVENTS) and e.stanza_id)]


def archived_ids(events: Iterable[ev.Event]) -> set[str]:
    """The room stanza-ids of the archived messages (posts, corrections, retractions) among ``events``."""
    return {e.stanza_id for e in events if isinstance(e, MESSAGE_EVENTS) and e.stanza_id}


def recovered_message(event: ev.Event) -> bool:
    """Whether a stored event counts as a message a catch-up recovered (the gap's count, verify's): one not seen
    live, except a tombstone's removal, counted with its post (a retraction read from the room's archive without a
    stanza-id of its own: every other message the archive gives carries its id, ``translate_message._tombstone``)."""
    if not isinstance(event, MESSAGE_EVENTS) or event.capture == ev.Capture.LIVE:
        return False
    return not (type(event) is ev.MessageRetracted and event.stanza_id is None and event.capture in _ARCHIVE_READS)


_ARCHIVE_READS = (ev.Capture.BACKFILL, ev.Capture.IMPORT)


def tombstone(events: list[ev.Event]) -> tuple[ev.MessagePosted, ev.MessageRetracted | None] | None:
    """The post and removal a tombstone of the room's archive was read as (the removal None where the room's view
    knew it then: ``translate_message._tombstone``); None for any other message."""
    post = events[0] if events else None
    if type(post) is not ev.MessagePosted or post.body_kept:
        return None
    return post, next((e for e in events[1:] if type(e) is ev.MessageRetracted), None)


def held_ids(server: Mapping[str, tuple[datetime, list[ev.Event]]], archived: set[str], view: RoomView) -> set[str]:
    """Of ``archived`` (stanza-ids), those that hold what the room's archive (``server``: stanza-id -> (stamp,
    events)) says of them: a tombstone is held once its removal is too (``RoomView.knows_removal``). A message
    archived with its text and removed while nobody watched (on a server that archives no announcement of it)
    is missing its removal."""
    owed = set()
    for sid in archived & server.keys():
        found = tombstone(server[sid][1])
        if found and found[1] is not None and not view.knows_removal(found[1], found[0]):
            owed.add(sid)
    return archived - owed


@dataclass(frozen=True)
class Completeness:
    """A span of a room's history, checked against the server's archive of it."""

    server: int  # messages the server's archive holds in the span
    archived: int  # of those, how many the archive holds
    missing: tuple[str, ...]  # stanza-ids of the others, in the server's order


def compare(server_ids: Iterable[str], archived: set[str]) -> Completeness:
    ordered = list(dict.fromkeys(server_ids))
    missing = tuple(sid for sid in ordered if sid not in archived)
    return Completeness(server=len(ordered), archived=len(ordered) - len(missing), missing=missing)


@dataclass(frozen=True)
class CatchUp:
    """What a catch-up achieved."""

    mam: bool  # the room serves an archive
    recovered: int = 0  # messages stored by the catch-up that the archive lacked
    checked: Completeness | None = None  # the span compared with the server's archive, after repair
    problem: str | None = None  # why messages may be missing although the room has an archive

    @property
    def verified(self) -> bool:
        return self.mam and self.problem is None and self.checked is not None and not self.checked.missing


def gap_event(room: str, start: datetime, end: datetime, outcome: CatchUp) -> ev.ArchiveGap:
    """The record of a span nobody watched, telling exactly what was recovered and what may be missing."""
    n = outcome.recovered
    if outcome.verified:
        kind = ev.GapKind.PRESENCE
        why = (
            f"listener away; {counted(n, 'message')} recovered from the room's archive, which holds "
            f"{counted(outcome.checked.server, 'message')} for the span, all archived; presence cannot be recovered"
        )
    elif outcome.mam:
        kind = ev.GapKind.MESSAGES
        missing = counted(len(outcome.checked.missing), "message") if outcome.checked else "some messages"
        reason = outcome.problem or f"{missing} could not be stored"
        why = f"listener away; {counted(n, 'message')} recovered from the room's archive, but {reason}: messages and presence may be missing"
    else:
        kind = ev.GapKind.MESSAGES
        why = (
            f"listener away and the room keeps no archive: {counted(n, 'message')} recovered from its discussion history; "
            "messages and presence may be missing"
        )
    return ev.ArchiveGap(
        room=room, occurred_at=end, recorded_at=end, gap_start=start, gap_end=end, kind=kind,
        explanation=why, recovered=n, verified=outcome.verified,
    )  # fmt: skip


def found_gone(view: RoomView, reason: str, now: datetime, gap_start: datetime | None) -> list[ev.Event]:
    """The record of a room the service no longer has, found at ``now``.

    Away since ``gap_start``, the listener saw neither the room end nor anyone leave: the end happened at an
    unknown time within the span, and the room's archive of the span went with it. So the span is a gap in
    which messages may be missing, the occupants are closed out as lost sight (as after a disconnect), and the
    destruction is recorded at the end of the gap, saying when it may have happened. Without time away (never
    watched yet), the room simply ends now.
    """
    base = {"room": view.room, "occurred_at": now, "recorded_at": now}
    if gap_start is None:
        return [ev.RoomDestroyed(**base, reason=reason), *close_out(view, ev.LeaveReason.ROOM_DESTROYED, base)]
    gap = ev.ArchiveGap(
        **base, gap_start=gap_start, gap_end=now, kind=ev.GapKind.MESSAGES, recovered=0, verified=False,
        explanation="listener away; the room was destroyed meanwhile, at an unknown time within the span, and its "
        "archive with it: messages and presence may be missing",
    )  # fmt: skip
    when = f"destroyed at an unknown time between {format_time(gap_start)} and {format_time(now)}, while the listener was away"
    return [gap, *close_out(view, ev.LeaveReason.LOST_SIGHT, base), ev.RoomDestroyed(**base, reason=f"{reason}; {when}")]
