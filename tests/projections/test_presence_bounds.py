"""What one presence query reads is bounded: anyone may ask a public room for its whole history, and
nicks, occupancy and stays read every nick, span and span of a stay of the range, however many."""

from __future__ import annotations

import pytest

from archive import events as ev
from archive.errors import InvalidQueryError
from projections.presence import queries
from tests.factories import at, make
from tests.projections.conftest import catch_up

ROOM = "lobby@conference.localhost"


def project(store, views, events):
    store.append(events)
    catch_up(store, views)


def test_the_nicks_of_a_range_come_a_page_at_a_time(event_store, views):
    project(event_store, views, [make(ev.OccupantJoined, i, nick=nick) for i, nick in enumerate("edcba")])
    presence = views.presence
    assert presence.nicks(ROOM, at(0), at(10), limit=2) == ["a", "b"]
    assert presence.nicks(ROOM, at(0), at(10), after="b", limit=2) == ["c", "d"]
    assert presence.nicks(ROOM, at(0), at(10), after="b", inclusive=True, limit=2) == ["b", "c"]
    assert presence.nicks(ROOM, at(0), at(10), after="d") == ["e"]


def test_a_stay_of_more_spans_than_a_page_holds_is_cut_and_keeps_its_end(event_store, views, monkeypatch):
    monkeypatch.setattr(queries, "MAX_SPANS", 5)
    changes = [make(ev.PresenceChanged, 1 + i, nick="zed", show="away" if i % 2 else "dnd") for i in range(8)]
    project(event_store, views, [make(ev.OccupantJoined, 0, nick="zed"), *changes,
                                 make(ev.OccupantLeft, 20, nick="zed", reason=ev.LeaveReason.KICKED),
                                 make(ev.OccupantJoined, 30, nick="zed"), make(ev.OccupantLeft, 31, nick="zed")])
    [stay] = views.presence.stays(ROOM, nick="zed", limit=1)
    assert len(stay.spans) == 5 and not stay.complete
    assert (stay.start, stay.end, stay.end_reason) == (at(0), at(20), "kicked")
    page = views.presence.stays_page(ROOM, nick="zed")
    assert [len(s.spans) for s in page.stays] == [5] and page.more
    rest = views.presence.stays_page(ROOM, nick="zed", after=stay.id)
    assert [(len(s.spans), s.complete) for s in rest.stays] == [(1, True)] and not rest.more
    within = views.presence.stays_page(ROOM, nick="zed", spans=4)
    assert within.stays == [] and within.more  # a page's budget ends before the stay: the next page has it


def test_a_page_of_stays_stops_before_the_stay_that_passes_its_budget(event_store, views, monkeypatch):
    monkeypatch.setattr(queries, "MAX_SPANS", 5)
    events = []
    for i in range(4):
        events += [make(ev.OccupantJoined, 10 * i, nick="zed"), make(ev.PresenceChanged, 10 * i + 1, nick="zed",
                   show="away"), make(ev.OccupantLeft, 10 * i + 2, nick="zed")]
    project(event_store, views, events)
    page = views.presence.stays_page(ROOM, nick="zed")
    assert [len(s.spans) for s in page.stays] == [2, 2] and page.more
    assert all(s.complete for s in page.stays)


def test_occupancy_of_a_range_of_more_spans_than_it_reads_is_refused(event_store, views, monkeypatch):
    monkeypatch.setattr(queries, "MAX_OCCUPANCY_SPANS", 3)
    project(event_store, views, [make(ev.OccupantJoined, i, nick=f"n{i}") for i in range(4)])
    assert len(views.presence.occupancy(ROOM, at(0), at(3), buckets=3).buckets) == 3  # three spans: read
    with pytest.raises(InvalidQueryError, match="more than 3 presence spans"):
        views.presence.occupancy(ROOM, at(0), at(10), buckets=3)
