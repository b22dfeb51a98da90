"""Presence queries (what the API serves). Every result is a msgspec Struct.

``Presence(recorder)`` (get one from ``chat_archive.bootstrap.open_views``):

- ``occupants_at(room, at, *, known_until=None) -> OccupantsAt``: who was in
  ``room`` at ``at``, with nick, role, affiliation, show, status and since when.
  After ``known_until`` (the archive's last known moment) nothing is known yet:
  ``known`` is False and ``possibly_present`` holds who was there then. If ``at`` falls
  in an archive gap, ``known`` is False, ``gap`` says which, ``occupants``
  holds only what is known (usually nobody) and ``possibly_present`` those
  last seen when presence stopped being known. Before the archive began (the
  listener's first moment in the room) ``known`` is False too, with the room's
  ``before_archive`` gap saying from when presence is known (``logic.archive_begins``).
- ``stays(room, *, nick=None, jid=None, occupant_id=None, start=None,
  end=None, limit=100, after=None) -> list[Stay]``: when this person was in this room
  (exactly one of nick, jid, occupant_id; a nick matches any span that had
  it), in stay order (after stay ``after``, to page), each with its spans (the show/status/role/nick changes
  inside). ``end`` None: still there; ``end_known`` False: presence became
  unknown (archive gap, lost connection) rather than the person leaving.
  At most MAX_SPANS spans are read: a stay of more (a client toggling away all year) is given with its
  first MAX_SPANS (``complete`` False; its end is still its own).
- ``stays_page(...) -> StaysPage``: the same within a budget of ``spans`` spans read, stopping before
  the first stay that would pass it (``more``: a page goes on from the last stay given).
- ``people_stays(room, start, end, *, people=MAX_STAYS, after=None) -> PeopleStays``: the stays of the first
  ``people`` nicks of ``nicks(room, start, end)``, each stay once, read within one page's budget of stays and
  spans; ``next`` says where the rest begins (within a person's stays if the budget ran out there).
- ``occupancy(room, start, end, *, buckets=24, known_until=None) -> Occupancy``: for a chart,
  ``[start, end)`` cut into equal buckets, each with ``peak`` (most occupants
  at once) and ``distinct`` (occupants present at some time), and ``unknown``
  when the bucket overlaps an archive gap or lies after ``known_until`` (its
  counts are then lower bounds). A range holding more than MAX_OCCUPANCY_SPANS spans is refused.
- ``nicks(room, start, end, *, after=None, limit=MAX_STAYS) -> list[str]``: the first ``limit`` nicks
  (after ``after``, or from it if ``inclusive``) present in ``room`` at some time in ``[start, end)``
  (that of a span overlapping it), in the database's order: the people of a range, found without
  decoding a span or reading the transcript's joins.
- ``gaps(room, *, start=None, end=None) -> list[Gap]``; ``gap_positions(room, *, ending_from, starting_before)
  -> list[int]``: the log positions of the gaps that end at or after one moment and start before another.
- ``stays_at(room, acts) -> list[int | None]``: the stay of each (nick, jid, at, leaving) of ``room``
  (``logic.stay_at``: what a transcript line's author did, and when), at most MAX_SPANS spans of a nick read;
  ``position()``: the log position the view holds every event up to (what ``stays_at`` answers for).
- ``incomplete_gaps() -> list[Gap]``: archive gaps of every room in which messages too
  may be missing (kind other than ``presence``; not the time before the archive began), newest first.

Bad arguments raise ``InvalidQueryError``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime

from archive.errors import InvalidQueryError

from ..tables import from_micros, micros
from ..viewdb_backends import ViewRecorder
from . import logic
from .logic import Gap, Span
from .results import Occupancy, OccupancyBucket, Occupant, OccupantsAt, PeopleStays, Stay, StaysPage
from .view import BEGINNINGS, NAME, decode_gap, decode_span

# Anyone may ask a public room for its whole history: what one call reads is bounded.
MAX_STAYS = 1000
MAX_SPANS = 10_000
MAX_OCCUPANCY_SPANS = 100_000  # (stay, start, end) only: a few tens of ms of Python
MAX_BUCKETS = 1000


class Presence:
    def __init__(self, recorder: ViewRecorder):
        self.recorder = recorder

    def occupants_at(
        self, room: str, at: datetime, *, known_until: datetime | None = None, away_since: datetime | None = None
    ) -> OccupantsAt:
        """``known_until``: the room's last known moment; ``away_since``: when the listener stopped watching it
        (``Views.last_known``), to say why presence after it is not known."""
        known_until = logic.room_known_until(known_until, away_since)
        if known_until is not None and at > known_until:
            # Not known yet: nobody is claimed; those there at the last known moment may still be.
            last = self.occupants_at(room, known_until)
            return OccupantsAt(room=room, at=at, known=False, occupants=[], known_until=known_until,
                               possibly_present=last.occupants if last.known else last.possibly_present,
                               unknown_why=logic.unknown_why(at, [], known_until, away_since))
        t = micros(at)

        def work(query, _generation):
            spans = [_span(r) for r in query(
                "SELECT data FROM {spans} WHERE room=? AND end_ts>? AND start_ts<=? ORDER BY id", (room, t, t)
            )]
            gaps = _reached(query, room, [decode_gap(bytes(r["data"])) for r in query(
                "SELECT data FROM {gaps} WHERE room=? AND end_ts>? AND start_ts<=? ORDER BY start_ts", (room, t, t)
            )])
            # Who may be there still: those whose presence stopped being known when an archive gap began
            # (before the archive began, nobody was seen).
            seen = [gap for gap in gaps if gap.kind != logic.BEFORE_ARCHIVE]
            lost = []
            if seen:
                lost = [s for s in (_span(r) for r in query(
                    "SELECT data FROM {spans} WHERE room=? AND end_ts>=? AND end_ts<=? ORDER BY id",
                    (room, micros(seen[0].start), t),
                )) if not logic.end_known(s)]
            starts = _stay_starts(query, {s.stay for s in spans + lost})
            return spans, gaps, lost, starts

        spans, gaps, lost, starts = self.recorder.read(NAME, work)
        why = logic.unknown_why(at, gaps, known_until, away_since)
        return OccupantsAt(
            room=room,
            at=at,
            known=why is None,
            unknown_why=why,
            occupants=[occupant(s, starts) for s in spans],
            gap=gaps[0] if gaps else None,
            possibly_present=[occupant(s, starts) for s in lost],
            known_until=known_until,
        )

    def stays(self, room: str, **query) -> list[Stay]:
        return self.stays_page(room, **query).stays

    def stays_page(
        self,
        room: str,
        *,
        nick: str | None = None,
        jid: str | None = None,
        occupant_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        after: int | None = None,
        spans: int | None = None,
    ) -> StaysPage:
        given = [(column, value) for column, value in (("nick", nick), ("jid", jid), ("occupant_id", occupant_id))
                 if value is not None]
        if len(given) != 1:
            raise InvalidQueryError("name exactly one of nick, jid, occupant_id")
        if not 1 <= limit <= MAX_STAYS:
            raise InvalidQueryError(f"limit must be 1..{MAX_STAYS}")
        most = MAX_SPANS
        budget = most if spans is None else min(spans, most)
        column, value = given[0]
        window, params = "", []
        if start:
            window += " AND end_ts>?"
            params.append(micros(start))
        if end:
            window += " AND start_ts<?"
            params.append(micros(end))
        if after is not None:
            window += " AND stay>?"
            params.append(after)

        def work(query, _generation):
            stay_ids = [r["stay"] for r in query(
                f"SELECT DISTINCT stay FROM {{spans}} WHERE room=? AND {column}=?{window} ORDER BY stay LIMIT ?",
                (room, value, *params, limit),
            )]
            read, left = [], budget
            for stay in stay_ids:
                rows = query("SELECT data FROM {spans} WHERE stay=? ORDER BY start_ts, id LIMIT ?", (stay, left + 1))
                if len(rows) > most:  # (left is most: nothing read yet) one stay of more spans than any page holds
                    last = query("SELECT data FROM {spans} WHERE stay=? ORDER BY start_ts DESC, id DESC LIMIT 1",
                                 (stay,))
                    read.append(([_span(r) for r in rows[:most]], _span(last[0])))
                    return read, stay != stay_ids[-1]
                if len(rows) > left:
                    return read, True
                left -= len(rows)
                read.append(([_span(r) for r in rows], None))
            return read, False

        read, more = self.recorder.read(NAME, work)
        return StaysPage(stays=[_stay(room, spans, last) for spans, last in read], more=more)

    def people_stays(
        self, room: str, start: datetime, end: datetime, *, people: int = MAX_STAYS,
        after: tuple[str, int | None] | None = None,
    ) -> PeopleStays:
        """The stays within [start, end) of the first ``people`` nicks present then (``nicks``' order), from
        ``after`` (a ``next``) on. At most MAX_STAYS stays and MAX_SPANS spans are read: when they run out,
        ``next`` goes on within that person's stays, after the last one read."""
        nick_after, stay_after = after or (None, None)
        nicks = self.nicks(room, start, end, after=nick_after, inclusive=stay_after is not None, limit=people + 1)
        found: dict[int, Stay] = {}
        stays_left, spans_left = MAX_STAYS, MAX_SPANS
        for i, nick in enumerate(nicks):
            if i == people:
                return PeopleStays(stays=_by_start(found), next=(nicks[i - 1], None))
            resume = stay_after if nick == nick_after else None
            page = self.stays_page(room, nick=nick, start=start, end=end, limit=stays_left, after=resume, spans=spans_left)
            for stay in page.stays:
                found.setdefault(stay.id, stay)
            stays_left -= len(page.stays)
            spans_left -= sum(len(stay.spans) for stay in page.stays)
            if page.more or not stays_left:
                last = page.stays[-1].id if page.stays else resume
                # (The first person read always gets a stay, its budget being whole: i > 0 when last is None.)
                return PeopleStays(stays=_by_start(found), next=(nick, last) if last is not None else (nicks[i - 1], None))
        return PeopleStays(stays=_by_start(found), next=None)

    def occupancy(
        self, room: str, start: datetime, end: datetime, *, buckets: int = 24, known_until: datetime | None = None
    ) -> Occupancy:
        if end <= start:
            raise InvalidQueryError("end must be later than start")
        if not 1 <= buckets <= MAX_BUCKETS:
            raise InvalidQueryError(f"buckets must be 1..{MAX_BUCKETS}")
        lo, hi = micros(start), micros(end)

        most = MAX_OCCUPANCY_SPANS

        def work(query, _generation):
            spans = query("SELECT stay, start_ts, end_ts FROM {spans} WHERE room=? AND end_ts>? AND start_ts<? "
                          "LIMIT ?", (room, lo, hi, most + 1))
            if len(spans) > most:
                raise InvalidQueryError(f"the range holds more than {most:,} presence spans: ask a shorter one")
            gaps = [(r["start_ts"], r["end_ts"]) for r in query(
                "SELECT start_ts, end_ts FROM {gaps} WHERE room=? AND end_ts>? AND start_ts<?", (room, lo, hi)
            )]
            if not _begun(query, room):
                gap = logic.not_reached(room)
                gaps.append((micros(gap.start), micros(gap.end)))
            return [(r["stay"], r["start_ts"], r["end_ts"]) for r in spans], gaps

        spans, gaps = self.recorder.read(NAME, work)
        if known_until is not None and micros(known_until) < hi:
            # After the archive's last known moment nobody is counted, and nothing is known.
            last = micros(known_until)
            spans = [(stay, a, min(b, last)) for stay, a, b in spans if a < last]
            gaps = [*gaps, (last, OPEN_BOUND)]
        edges = [lo + (hi - lo) * i // buckets for i in range(buckets + 1)]
        counts = occupancy_counts(spans, gaps, edges)
        return Occupancy(
            room=room,
            start=start,
            end=end,
            buckets=[
                OccupancyBucket(start=from_micros(a), end=from_micros(b), peak=peak, distinct=distinct, unknown=unknown)
                for (a, b), (peak, distinct, unknown) in zip(zip(edges, edges[1:]), counts)
            ],
        )

    def nicks(
        self, room: str, start: datetime, end: datetime, *, after: str | None = None, inclusive: bool = False,
        limit: int = MAX_STAYS,
    ) -> list[str]:
        # The order (and ``after``) is the database's own, so that a page picks up where the last one ended.
        since = "" if after is None else " AND nick>=?" if inclusive else " AND nick>?"
        rows = self.recorder.read(NAME, lambda query, _: query(
            f"SELECT DISTINCT nick FROM {{spans}} WHERE room=? AND end_ts>? AND start_ts<?{since} ORDER BY nick LIMIT ?",
            (room, micros(start), micros(end), *([] if after is None else [after]), limit),
        ))  # fmt: skip
        return [row["nick"] for row in rows]

    def gaps(self, room: str, *, start: datetime | None = None, end: datetime | None = None) -> list[Gap]:
        lo = micros(start) if start else -OPEN_BOUND
        hi = micros(end) if end else OPEN_BOUND
        return self.recorder.read(NAME, lambda query, _: _reached(query, room, [decode_gap(bytes(r["data"])) for r in query(
            "SELECT data FROM {gaps} WHERE room=? AND end_ts>? AND start_ts<? ORDER BY start_ts", (room, lo, hi)
        )]))

    def position(self) -> int:
        """The log position of the last event the view has applied and committed."""
        return self.recorder.position(NAME, self.recorder.generations(NAME)[0])

    def stays_at(self, room: str, acts: Sequence[tuple[str, str | None, datetime, bool]]) -> list[int | None]:
        """``logic.stay_at`` of each (nick, jid, at, leaving) of ``acts`` in ``room``: one read of each nick's
        spans around its acts' times (the newest MAX_SPANS: an act older than those is in no stay known)."""
        around: dict[str, tuple[int, int]] = {}
        for nick, _, at, _ in acts:
            t = micros(at)
            low, high = around.get(nick, (t, t))
            around[nick] = (min(low, t), max(high, t))

        def work(query, _generation):
            return {nick: [_span(r) for r in query(
                "SELECT data FROM {spans} WHERE room=? AND nick=? AND start_ts<=? AND end_ts>=? ORDER BY id DESC "
                "LIMIT ?", (room, nick, high, low, MAX_SPANS))] for nick, (low, high) in around.items()}

        spans = self.recorder.read(NAME, work) if around else {}
        return [logic.stay_at(spans[nick], nick, jid, at, leaving=leaving) for nick, jid, at, leaving in acts]

    def gap_positions(self, room: str, *, ending_from: datetime | None, starting_before: datetime | None) -> list[int]:
        """The log positions of ``room``'s gaps that end at or after ``ending_from`` and start before
        ``starting_before`` (either None: any): where the transcript queries find the gap lines that began before a range and reach
        into it (``Transcripts.gaps_into``), by this view's index of gaps by their ends. (A room's ``before_archive``
        gap is among them, by the position of its first event: the transcript's line there is no gap line.)"""
        rows = self.recorder.read(NAME, lambda query, _: query(
            "SELECT id FROM {gaps} WHERE room=? AND end_ts>=? AND start_ts<?",
            (room, micros(ending_from) if ending_from else -OPEN_BOUND,
             micros(starting_before) if starting_before else OPEN_BOUND),
        ))  # fmt: skip
        return [row["id"] for row in rows]

    def incomplete_gaps(self) -> list[Gap]:
        rows = self.recorder.read(NAME, lambda query, _: query("SELECT data FROM {gaps} ORDER BY start_ts DESC", ()))
        gaps = (decode_gap(bytes(r["data"])) for r in rows)
        return [gap for gap in gaps if gap.kind not in ("presence", logic.BEFORE_ARCHIVE)]


OPEN_BOUND = 2**63 - 1


def _begun(query, room: str) -> bool:
    """Whether the view holds the room's beginning (its ``before_archive`` gap, the one starting at EARLIEST)."""
    return bool(query(BEGINNINGS + " AND room=? LIMIT 1", (room,)))


def _reached(query, room: str, gaps: list[Gap]) -> list[Gap]:
    """``gaps`` (of ``room``), led by ``logic.not_reached`` if the view has not reached the room."""
    if any(gap.kind == logic.BEFORE_ARCHIVE for gap in gaps) or _begun(query, room):
        return gaps
    return [logic.not_reached(room), *gaps]


def occupancy_counts(
    spans: list[tuple[int, int, int]], gaps: list[tuple[int, int]], edges: list[int]
) -> list[tuple[int, int, bool]]:
    """(peak, distinct, unknown) per bucket ``[edges[i], edges[i+1])``.

    ``spans`` are (stay, start, end); a stay's spans are contiguous, so a
    stay counts as one occupant from its first start to its last end.
    Anyone may ask a public room for a long range in many buckets: each bucket's
    counts are found by bisection (O((stays + buckets) log stays)), not by a pass
    over every stay per bucket.
    """
    stays: dict[int, list[int]] = {}
    for stay, start, end in spans:
        bounds = stays.setdefault(stay, [start, end])
        bounds[0], bounds[1] = min(bounds[0], start), max(bounds[1], end)
    changes = sorted([(s, 1) for s, _ in stays.values()] + [(e, -1) for _, e in stays.values()])
    overlapping, unknown_in = _overlaps(list(stays.values())), _overlaps(gaps)
    result = []
    current, i = 0, 0
    for a, b in zip(edges, edges[1:]):
        while i < len(changes) and changes[i][0] <= a:
            current += changes[i][1]
            i += 1
        peak = current
        while i < len(changes) and changes[i][0] < b:
            current += changes[i][1]
            peak = max(peak, current)
            i += 1
        result.append((peak, overlapping(a, b), unknown_in(a, b) > 0))
    return result


def _overlaps(intervals):
    """How many of ``intervals`` ([start, end), start <= end) overlap [a, b): those starting before b, less
    those ended by a (each of which started before b too)."""
    starts, ends = sorted(s for s, _ in intervals), sorted(e for _, e in intervals)
    return lambda a, b: bisect_left(starts, b) - bisect_right(ends, a)


def _span(row) -> Span:
    return decode_span(bytes(row["data"]))


def _stay_starts(query, stays: set[int]) -> dict[int, datetime]:
    starts = {}
    for stay in stays:
        rows = query("SELECT start_ts FROM {spans} WHERE id=?", (stay,))
        if rows:
            starts[stay] = from_micros(rows[0]["start_ts"])
    return starts


def occupant(span: Span, starts: dict[int, datetime]) -> Occupant:
    """The occupant a span shows; ``starts`` maps stays to their start (``since``)."""
    return Occupant(
        nick=span.nick,
        since=starts.get(span.stay, span.start),
        jid=span.jid,
        occupant_id=span.occupant_id,
        role=span.role,
        affiliation=span.affiliation,
        show=span.show,
        status=span.status,
    )


def _stay(room: str, spans: list[Span], last: Span | None = None) -> Stay:
    """The stay of ``spans``; ``last``: its last span when ``spans`` are only its first ones."""
    first, last = spans[0], last or spans[-1]
    nicks = list(dict.fromkeys(s.nick for s in spans))
    return Stay(
        room=room,
        id=first.stay,
        nicks=nicks,
        start=first.start,
        end=last.end,
        end_reason=last.end_reason,
        end_known=last.end is None or logic.end_known(last),
        start_inferred=first.start_reason in ("inferred", "gap"),
        spans=spans,
        jid=next((s.jid for s in spans if s.jid), None),
        occupant_id=next((s.occupant_id for s in spans if s.occupant_id), None),
        complete=last is spans[-1],
    )


def _by_start(stays: dict[int, Stay]) -> list[Stay]:
    return sorted(stays.values(), key=lambda stay: (stay.start, stay.id))
