"""Retention and legal holds: which events have expired, which a hold keeps, and the purge.

Holds are events of the compliance stream (``LegalHoldPlaced``, ``LegalHoldReleased``),
so who placed and released which hold, and when, is itself archived and chained.
``held`` and ``retention_days`` are the rules; ``purge`` applies them, keeping whole what belongs together
(a message's post and the corrections and removals applied to it: the message model's rule, which the caller
hands in; not what it refused, which anyone may send), with or without holds: a message's events expire
together, with the youngest of them. It records
an ``EventsPurged`` (per room the spans of versions it deletes, each with the chain
link at its last version, so that ``verify --integrity`` carries the chain across
the cut) and then deletes the events from the store. The views and the search index
are rebuilt from what remains by the caller (``chat_archive``), which owns them, and
records a ``PurgeApplied`` when they are: a purge record no ``PurgeApplied`` covers
(``unapplied_purge``) is a rebuild still owed, whichever process was interrupted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from .errors import InvalidQueryError, NotFoundError
from .events import (
    COMPLIANCE_STREAM, Event, EventsPurged, LegalHoldPlaced, LegalHoldReleased, PurgeApplied, PurgedSpan, Recorded,
    room_problem,
)
from .integrity import verify_integrity
from .settings import RetentionSettings
from .store import EventStore
from .times import format_time, utcnow

_PEOPLE_FIELDS = ("jid", "by_jid", "actor")

KeptTogether = Callable[[Callable[[], Iterable[Recorded]]], Iterable[Collection[int]]]
"""The groups (log positions) of a room's events that a purge keeps or deletes whole, given a way to read the
room's events in log order (as often as it needs): ``projections.message_groups``, from ``chat_archive``. Which
events make one message is the message model's rule, above the archive: a purge that judged each event alone
deleted a held message's later moderation or correction, and the rebuilt views showed it never removed,
uncorrected; with no hold, it deleted a message and kept its younger correction, which the rebuild then applied
to a later message reusing its id."""


def retention_days(room: str, settings: RetentionSettings) -> int:
    """The room's retention in days (0: forever): its own entry (exact JID first, then globs), else the default."""
    room = room.lower()
    rooms = {pattern.lower(): days for pattern, days in settings.rooms.items()}
    if room in rooms:
        return rooms[room]
    for pattern, days in rooms.items():
        if fnmatchcase(room, pattern):
            return days
    return settings.default_days


def active_holds(events: Iterable[Event]) -> list[LegalHoldPlaced]:
    """The holds placed and not released, in the order they were placed."""
    placed: dict[str, LegalHoldPlaced] = {}
    for event in events:
        if type(event) is LegalHoldPlaced:
            placed[event.hold_id] = event
        elif type(event) is LegalHoldReleased:
            placed.pop(event.hold_id, None)
    return list(placed.values())


def held(event: Event, holds: Iterable[LegalHoldPlaced]) -> bool:
    """Whether any hold covers the event: its room, its time and one of its people. An event whose
    people the room did not reveal is kept by every hold on people of its room: a hold errs on keeping. Rooms are
    JIDs, named in any case (as retention reads them)."""
    for hold in holds:
        if not _covers_room(hold, event.room):
            continue
        if (hold.hold_from and event.occurred_at < hold.hold_from) or (hold.hold_to and event.occurred_at >= hold.hold_to):
            continue
        if not hold.jids:
            return True
        people = {_bare(getattr(event, name, None)) for name in _PEOPLE_FIELDS} - {None}
        if not people or people & {_bare(j) for j in hold.jids}:
            return True
    return False


def _covers_room(hold: LegalHoldPlaced, room: str) -> bool:
    room = room.lower()
    return not hold.rooms or any(room == r or fnmatchcase(room, r) for r in map(str.lower, hold.rooms))


def _bare(jid: str | None) -> str | None:
    return jid.split("/", 1)[0].lower() if jid else None


def place_hold(store: EventStore, *, case: str, rooms=(), jids=(), start=None, end=None, by: str = "") -> LegalHoldPlaced:
    if not case.strip():
        raise InvalidQueryError("a legal hold needs a case name")
    if start and end and end <= start:
        raise InvalidQueryError("a hold's end must be later than its start")
    _check_hold_names(rooms, jids)
    now = utcnow()
    hold = LegalHoldPlaced(room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=now, hold_id=secrets.token_hex(6),
                           case=case.strip(), rooms=tuple(rooms), jids=tuple(jids), hold_from=start, hold_to=end, by=by)
    store.append([hold])
    return hold


def _check_hold_names(rooms: Iterable[str], jids: Iterable[str]) -> None:
    """A hold names rooms by JID or glob, people by JID: a bare room name (``lobby``, as search's ``room:`` takes
    it) or a nick would cover nothing, and the next purge would delete what the hold was placed to keep."""
    for room in rooms:
        if not any(c in room for c in "*?[") and (problem := room_problem(room)):
            raise InvalidQueryError(f"{problem}: a hold names rooms by JID or glob (lobby@conference.example.org, "
                                    "lobby@*, *@conference.example.org), unlike the other commands' --room, because it "
                                    "covers rooms archived later too, which a bare name read now would miss; a name "
                                    "that covered nothing would let the next purge delete what the hold is to keep")
    for jid in jids:
        if room_problem(jid.split("/", 1)[0]):
            raise InvalidQueryError(f"a hold names people by JID (alice@example.org), not {jid!r}")


def release_hold(store: EventStore, hold_id: str, *, by: str = "", reason: str = "") -> LegalHoldReleased:
    if hold_id not in {h.hold_id for h in holds_of(store)}:
        raise NotFoundError(f"no active legal hold {hold_id!r}")
    now = utcnow()
    release = LegalHoldReleased(room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=now, hold_id=hold_id, by=by,
                                reason=reason)
    store.append([release])
    return release


def holds_of(store: EventStore) -> list[LegalHoldPlaced]:
    return active_holds(r.event for r in store.read_room(COMPLIANCE_STREAM))


def purge(store: EventStore, settings: RetentionSettings, *, together: KeptTogether, now: datetime | None = None,
          by: str = "", dry_run: bool = False) -> EventsPurged | None:
    """Delete every expired event no hold covers, alone or through a group it is kept ``together`` with, and
    none of whose group is younger than its room's cutoff; the purge record, or None if nothing expired."""
    now = now or utcnow()
    holds = holds_of(store)
    cutoffs: dict[str, datetime] = {}
    doomed: dict[str, list[int]] = {}
    for room in store.rooms():
        days = retention_days(room, settings)
        if not days:
            continue
        cutoffs[room] = now - timedelta(days=days)
        versions = _expired(store, room, cutoffs[room], [h for h in holds if _covers_room(h, room)], together)
        if versions:
            doomed[room] = versions
    if not doomed:
        return None
    # Each span's last full link, recomputed: an event stores a prefix of its own (``archive.chain``).
    links = {walk.stream: walk.kept for walk in verify_integrity(store, keep=doomed).streams}
    spans = [span for room, versions in doomed.items() for span in _spans(room, versions, links.get(room, {}))]
    record = EventsPurged(
        room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=utcnow(), spans=tuple(spans),
        events=sum(len(v) for v in doomed.values()), by=by,
        cutoff_policy=f"default {settings.default_days} days; rooms {dict(settings.rooms) or 'none'}; "
        f"{len(holds)} active holds; messages kept whole; run at {format_time(now)}",
    )
    if dry_run:
        return record
    store.append([record])  # first: a purge interrupted after it is finished by the next one
    for room, versions in doomed.items():
        store.delete_events(room, versions, cutoffs[room])
    return record


def _expired(store: EventStore, room: str, cutoff: datetime, holds: list[LegalHoldPlaced],
             together: KeptTogether) -> list[int]:
    """The versions of ``room`` a purge deletes: those that occurred before ``cutoff`` that no hold covers, and
    whose group (``together``) goes whole: none of its events held, however late (a correction after the hold's
    end, a moderation by somebody it does not name), and none younger than ``cutoff``. With no hold as with one:
    a group split by the cutoff would leave a correction or removal without its message, naming the newest
    message left with that id (a later one reusing it, a held one) and changing what it shows, with no event
    saying so. Streamed: in memory are the expired versions and the groups' members, not the room's events; a
    room with nothing expired is not read (one index probe)."""
    if next(iter(store.read_room(room, end=cutoff, page_size=1)), None) is None:
        return []
    group_of = {p: i for i, group in enumerate(together(lambda: store.read_room(room))) for p in group}
    kept: set[int] = set()
    expired: list[int] = []
    grouped: dict[int, int] = {}  # expired version -> its group
    for version, record in store.read_room_versions(room):
        group, event = group_of.get(record.position), record.event
        if event.occurred_at >= cutoff or held(event, holds):
            if group is not None:
                kept.add(group)
        else:
            expired.append(version)
            if group is not None:
                grouped[version] = group
    return [version for version in expired if version not in grouped or grouped[version] not in kept]


def unapplied_purges(compliance: Iterable[Recorded]) -> list[Recorded]:
    """The purge records whose deletions the views and the index may still show, oldest first: those after
    the newest one a ``PurgeApplied`` covers (its rebuild failed, or its process ended first, perhaps among
    its deletions). A rebuild covers every purge before it."""
    purges, applied = [], 0
    for record in compliance:
        if type(record.event) is EventsPurged:
            purges.append(record)
        elif type(record.event) is PurgeApplied:
            applied = max(applied, record.event.purge_position)
    return [record for record in purges if record.position > applied]


def unapplied_purge(compliance: Iterable[Recorded]) -> int | None:
    """The log position of the newest of ``unapplied_purges``; None if none."""
    unapplied = unapplied_purges(compliance)
    return unapplied[-1].position if unapplied else None


def pending_purge(store: EventStore) -> int | None:
    """``unapplied_purge`` of the store's compliance stream."""
    return unapplied_purge(store.read_room(COMPLIANCE_STREAM))


def finish_purges(store: EventStore) -> None:
    """Delete what each unapplied purge record names that is still stored: a record is written before its
    deletions (a purge stopped among them), and the purge that comes next deletes only what its own policy finds
    expired then (none, with no retention period set). The record is the decision: a hold placed after it keeps
    none of what it names (kept, those events would sit inside a span the chain walk skips, unverified)."""
    for record in unapplied_purges(store.read_room(COMPLIANCE_STREAM)):
        for room, versions in _named(record.event).items():
            # Every version it names occurred before the room's cutoff, which was before the record.
            store.delete_events(room, versions, record.event.occurred_at)


def owed_deletions(store: EventStore) -> int:
    """How many events the unapplied purge records name that are still stored: what ``finish_purges`` deletes."""
    owed: set[tuple[str, int]] = set()
    for record in unapplied_purges(store.read_room(COMPLIANCE_STREAM)):
        for room, versions in _named(record.event).items():
            stored = store.stream_link_map(room).keys()
            owed.update((room, version) for version in versions if version in stored)
    return len(owed)


def _named(record: EventsPurged) -> dict[str, list[int]]:
    named: dict[str, list[int]] = {}
    for span in record.spans:
        named.setdefault(span.stream, []).extend(range(span.first, span.last + 1))
    return named


def record_purge_applied(store: EventStore, purge_position: int, *, by: str = "", search_index: str = "") -> PurgeApplied:
    """Record that the views and the index (generation ``search_index``) were rebuilt after the purge at
    ``purge_position``."""
    now = utcnow()
    applied = PurgeApplied(room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=now, purge_position=purge_position,
                           by=by, search_index=search_index)
    store.append([applied])
    return applied


def _spans(room: str, versions: list[int], links: Mapping[int, bytes | None]) -> list[PurgedSpan]:
    spans, start = [], versions[0]
    for previous, version in zip(versions, [*versions[1:], None]):
        if version is None or version != previous + 1:
            link = links.get(previous)
            spans.append(PurgedSpan(room, start, previous, link.hex() if link else ""))
            start = version
    return spans
