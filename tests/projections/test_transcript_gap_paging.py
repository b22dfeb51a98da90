"""Paging a range of a transcript, either way and with any page size, reads the gap lines that reach into it from
before (``ranges.gap_meets``) first, each once, then the range's own lines, each once: on both stores, against an
oracle read from the whole room."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import events as ev
from projections.ranges import gap_meets
from projections.tables import order_micros
from tests.factories import at, make, message

from .conftest import catch_up

ROOM = "lobby@conference.localhost"
# (start, end) of each gap, in seconds after T0: long ones over many lines, one inside another, one of no length,
# one reaching past the last line; a gap of another room.
GAPS = [(10, 500), (100, 130), (200, 200), (250, 700), (499, 501)]


@pytest.fixture
def room(event_store, views):
    events = [message(t, f"m{t}") for t in range(0, 600, 20)]
    events += [message(100, "same second as a gap's start")]
    events += [make(ev.ArchiveGap, end, gap_start=at(start), gap_end=at(end), kind=ev.GapKind.MESSAGES)
               for start, end in GAPS]
    events += [make(ev.ArchiveGap, 900, room="other@conference.localhost", gap_start=at(0), gap_end=at(900),
                    kind=ev.GapKind.MESSAGES)]
    event_store.append(events)
    catch_up(event_store, views)
    return views


def expected(views, start, end) -> list[int]:
    every = views.transcripts.page(ROOM, limit=1000).lines
    lo, hi = order_micros(start), end and order_micros(end)
    reaching = [line.id for line in every if line.kind == "gap" and order_micros(line.at) < lo
                and gap_meets(line, start, end)]
    return reaching + [line.id for line in every if order_micros(line.at) >= lo and (hi is None or order_micros(line.at) < hi)]


def paged(views, start, end, limit, direction) -> list[int]:
    """Every line of the range, a page at a time from its start (forward) or end (backward), and the same back
    from the last page reached."""
    transcripts, forward = views.transcripts, direction == "forward"
    page = transcripts.page(ROOM, start=start, end=end, limit=limit, direction=direction)
    seen = [line.id for line in page.lines]
    assert (page.prev_cursor if forward else page.next_cursor) is None
    while (cursor := page.next_cursor if forward else page.prev_cursor) is not None:
        page = transcripts.page(ROOM, start=start, end=end, limit=limit, direction=direction, cursor=cursor)
        assert page.lines
        seen = seen + [line.id for line in page.lines] if forward else [line.id for line in page.lines] + seen
    back = [line.id for line in page.lines]
    other = "backward" if forward else "forward"
    while (cursor := page.prev_cursor if forward else page.next_cursor) is not None:
        page = transcripts.page(ROOM, start=start, end=end, limit=limit, direction=other, cursor=cursor)
        back = [line.id for line in page.lines] + back if forward else back + [line.id for line in page.lines]
    assert back == seen
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(-10, 650), half=st.booleans(), length=st.one_of(st.none(), st.integers(1, 400)),
       limit=st.integers(1, 6), direction=st.sampled_from(["forward", "backward"]))
def test_a_range_pages_the_gaps_reaching_into_it_first_once(room, start, half, length, limit, direction):
    begin = at(start) + (timedelta(milliseconds=500) if half else timedelta(0))
    end = None if length is None else begin + timedelta(seconds=length)
    assert paged(room, begin, end, limit, direction) == expected(room, begin, end)


def test_a_window_around_a_line_inside_gaps_says_so(room):
    target = next(line for line in room.transcripts.page(ROOM, start=at(300), limit=1, reaching=False).lines)
    context = room.transcripts.context(ROOM, target.id, before=2, after=1)
    first = context.before[0]
    assert [(g.at, g.gap_end) for g in context.gaps] == [(at(10), at(500)), (at(250), at(700))]
    assert all(gap_meets(g, first.at, None) and g.at < first.at for g in context.gaps)
    # A window holding every line before its target: nothing reaches into it from before.
    assert room.transcripts.context(ROOM, target.id, before=100, after=1).gaps == []
