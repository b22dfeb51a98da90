"""Presence is never claimed after the archive's last known moment (the listener's heartbeat,
or the time the log's last event was recorded): later questions answer "not known yet"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive import events as ev
from archive.times import format_time, utcnow
from projections.views import Views
from query_api.access import AllRooms, Caller
from query_api.roles import Role
from query_api.web.room_presence import day_presence
from tests.factories import at, make, message
from tests.query_api.conftest import auth
from tests.query_api.one_truth import World

MORNING = at(0).replace(hour=9, minute=0)  # alice joins at 09:00 and is still there at 09:03


@pytest.fixture
def world(store_url, tmp_path):
    w = World(store_url, tmp_path)
    yield w
    w.close()


def _times():
    now = utcnow()
    return {"now": now, "in 14 hours": now + timedelta(hours=14), "later that day": MORNING.replace(hour=15, minute=51)}


def test_no_view_claims_presence_after_the_last_known_moment(world):
    room = world.new_room()
    world.feed([
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
        message(0, "morning", "alice", room=room, occurred_at=MORNING + timedelta(minutes=3),
                recorded_at=MORNING + timedelta(minutes=3)),
    ])  # fmt: skip
    last = MORNING + timedelta(minutes=3)
    compliance = auth(world.compliance)
    known = world.client.get(f"/api/v1/rooms/{room}/presence?at={format_time(last)}", headers=compliance).json
    assert known["known"] and [o["nick"] for o in known["occupants"]] == ["alice"]
    for name, moment in _times().items():
        there = world.client.get(f"/api/v1/rooms/{room}/presence?at={format_time(moment)}", headers=compliance).json
        assert (there["known"], there["occupants"]) == (False, []), name
        assert [o["nick"] for o in there["possibly_present"]] == ["alice"], name
        assert there["known_until"] == format_time(last), name
        state = world.client.get(f"/api/v1/rooms/{room}/state?at={format_time(moment)}", headers=compliance).json
        assert (state["presence_known"], state["occupants"]) == (False, []), name
        assert [line["body"] for line in state["lines"] if line["kind"] == "message"] == ["morning"], name
    day_range = f"from={format_time(MORNING.replace(hour=0))}&to={format_time(MORNING.replace(hour=0) + timedelta(days=1))}"
    ranged = world.client.get(f"/api/v1/rooms/{room}/presence?{day_range}&buckets=24", headers=compliance).json
    buckets = ranged["occupancy"]
    assert [b["peak"] for b in buckets[9:11]] == [1, 0] and not buckets[8]["unknown"]
    assert all(b["unknown"] and b["peak"] == 0 for b in buckets[10:]), "after 09:03: empty and not known"


def test_the_day_chart_draws_the_future_empty_and_says_not_known_yet(world):
    room = world.new_room()
    last = MORNING + timedelta(minutes=3)
    world.feed([
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
        make(ev.OccupantJoined, 0, room, nick="bob", occurred_at=last, recorded_at=last),
    ])  # fmt: skip
    with world.app.test_request_context():
        chart, here, _ = day_presence(room, MORNING.date(), MORNING.replace(hour=15, minute=51), _compliance_caller(world))
        _, earlier, _ = day_presence(room, MORNING.date(), MORNING + timedelta(minutes=1), _compliance_caller(world))
    assert here is None and earlier == [("alice", "available")]
    # alice's bar ends at the last known moment (09:03), not at midnight
    assert f'data-end="{last.timestamp():.0f}"' in chart and f'data-known-until="{last.timestamp():.0f}"' in chart
    midnight = MORNING.replace(hour=0) + timedelta(days=1)
    assert f'data-end="{midnight.timestamp():.0f}"><title>' not in chart


def test_the_listeners_heartbeat_extends_what_is_known(store_url, tmp_path, event_store):
    event_store.append([make(ev.OccupantJoined, 0, nick="alice", occurred_at=MORNING, recorded_at=MORNING)])
    beat = MORNING + timedelta(hours=2)
    with Views(f"sqlite:///{tmp_path}/v.sqlite", event_store, heartbeat=lambda: beat) as views:
        assert views.known_until() == beat
    with Views(f"sqlite:///{tmp_path}/v.sqlite", event_store, heartbeat=lambda: utcnow() + timedelta(days=1)) as views:
        assert views.known_until() <= utcnow(), "never later than now"


def _compliance_caller(world):
    return Caller(role=Role.COMPLIANCE, scope=AllRooms())
