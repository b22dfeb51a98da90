"""Presence is never claimed after the archive's last known moment (the listener's heartbeat,
or the time the log's last event was recorded): later questions answer "not known yet"."""

from __future__ import annotations

from datetime import timedelta
from html import escape

import pytest

from archive import events as ev
from archive.times import format_time, utcnow
from projections.follower import LogFollower
from projections.views import Heartbeat, Views
from query_api.access import AllRooms, Caller
from query_api.context import EXTENSION
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
    assert [b["peak"] for b in buckets[9:11]] == [1, 0]
    assert all(b["unknown"] for b in buckets[:9]), "before 09:00 the archive had not seen the room"
    assert all(b["unknown"] and b["peak"] == 0 for b in buckets[10:]), "after 09:03: empty and not known"


def test_the_day_chart_draws_the_future_empty_and_says_not_known_yet(world):
    room = world.new_room()
    last = MORNING + timedelta(minutes=3)
    world.feed([
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
        make(ev.OccupantJoined, 0, room, nick="bob", occurred_at=last, recorded_at=last),
    ])  # fmt: skip
    with world.app.test_request_context():
        chart, here, *_ = day_presence(room, MORNING.date(), MORNING.replace(hour=15, minute=51), _compliance_caller(world))
        _, earlier, *_ = day_presence(room, MORNING.date(), MORNING + timedelta(minutes=1), _compliance_caller(world))
    assert here is None and earlier == [("alice", "available")]
    # alice's bar ends at the last known moment (09:03), not at midnight
    assert f'data-end="{last.timestamp():.0f}"' in chart and f'data-known-until="{last.timestamp():.0f}"' in chart
    midnight = MORNING.replace(hour=0) + timedelta(days=1)
    assert f'data-end="{midnight.timestamp():.0f}"><title>' not in chart


def test_the_listeners_heartbeat_extends_what_is_known(store_url, tmp_path, event_store):
    event_store.append([make(ev.OccupantJoined, 0, nick="alice", occurred_at=MORNING, recorded_at=MORNING)])
    beat = MORNING + timedelta(hours=2)
    with Views(f"sqlite:///{tmp_path}/v.sqlite", event_store, heartbeat=lambda: Heartbeat(beat)) as views:
        assert views.known_until() < MORNING, "views that hold nothing yet know nothing"
        for projection in views.projections():
            LogFollower(event_store, projection, commit_interval=60).catch_up()
        assert views.known_until() == beat
    with Views(f"sqlite:///{tmp_path}/v.sqlite", event_store, heartbeat=lambda: Heartbeat(utcnow() + timedelta(days=1))) as views:
        assert views.known_until() <= utcnow(), "never later than now"


def _compliance_caller(world):
    return Caller(role=Role.COMPLIANCE, scope=AllRooms())


def test_presence_before_the_listener_first_saw_the_room_is_not_known(world):
    """A room's history may reach back before the archive watched it (the room's own archive, imported or
    backfilled, keeps no presence): "who was here at T" then is "not known", and from when it is."""
    room = world.new_room()
    earlier = MORNING - timedelta(hours=2)
    world.feed([
        make(ev.RoomDiscovered, 0, room, occurred_at=MORNING, recorded_at=MORNING),
        message(0, "from the room's archive", "bob", room=room, occurred_at=earlier, recorded_at=MORNING,
                capture=ev.Capture.IMPORT),
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
        message(0, "morning", "alice", room=room, occurred_at=MORNING + timedelta(minutes=3),
                recorded_at=MORNING + timedelta(minutes=3)),
        message(0, "still here", "alice", room=room, stanza_id="still", occurred_at=MORNING + timedelta(hours=1),
                recorded_at=MORNING + timedelta(hours=1)),
    ])  # fmt: skip
    compliance = auth(world.compliance)
    before = MORNING - timedelta(hours=1)
    there = world.client.get(f"/api/v1/rooms/{room}/presence?at={format_time(before)}", headers=compliance).json
    assert (there["known"], there["occupants"], there["possibly_present"]) == (False, [], [])
    assert there["gap"]["end"] == format_time(MORNING) and there["gap"]["kind"] == "before_archive"
    assert f"begins at {format_time(MORNING)}" in there["gap"]["explanation"]
    state = world.client.get(f"/api/v1/rooms/{room}/state?at={format_time(before)}", headers=compliance).json
    assert (state["presence_known"], state["occupants"], state["gap"]) == (False, [], there["gap"])
    assert [line["body"] for line in state["lines"] if line["kind"] == "message"] == ["from the room's archive"]
    since = world.client.get(f"/api/v1/rooms/{room}/presence?at={format_time(MORNING)}", headers=compliance).json
    assert since["known"] and [o["nick"] for o in since["occupants"]] == ["alice"]
    day_range = f"from={format_time(MORNING.replace(hour=0))}&to={format_time(MORNING.replace(hour=10))}"
    ranged = world.client.get(f"/api/v1/rooms/{room}/presence?{day_range}&buckets=10", headers=compliance).json
    assert [b["unknown"] for b in ranged["occupancy"]] == [True] * 9 + [False], ranged
    assert [g["kind"] for g in ranged["gaps"]] == ["before_archive"]
    with world.app.test_request_context():
        page = day_presence(room, MORNING.date(), before, _compliance_caller(world))
        then = day_presence(room, MORNING.date(), MORNING + timedelta(minutes=1), _compliance_caller(world)).here
    assert page.here is None and page.unknown == there["gap"]["explanation"] and then == [("alice", "available")]
    assert f'data-why="{escape(there["gap"]["explanation"])}"' in page.chart  # for the page's script


def test_presence_in_a_room_the_listener_never_joined_is_not_known(world):
    """Only imported history (a log's joins and leaves): the archive never watched the room itself."""
    room = world.new_room()
    imported = {"capture": ev.Capture.IMPORT, "recorded_at": MORNING + timedelta(hours=1)}
    world.feed([
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, **imported),
        message(0, "hi", "alice", room=room, occurred_at=MORNING + timedelta(minutes=3), **imported),
    ])  # fmt: skip
    compliance = auth(world.compliance)
    moment = format_time(MORNING + timedelta(minutes=5))
    there = world.client.get(f"/api/v1/rooms/{room}/presence?at={moment}", headers=compliance).json
    assert there["known"] is False and there["gap"]["kind"] == "before_archive"
    assert "never" in there["gap"]["explanation"]
    state = world.client.get(f"/api/v1/rooms/{room}/state?at={moment}", headers=compliance).json
    assert state["presence_known"] is False


def test_every_view_says_the_same_of_what_is_known(world):
    """One rule (``logic.unknown_why``): /presence, /state, the occupancy of a one-second bucket and the room
    page agree at every moment: before the archive began, in a gap, around it, and after the last known one."""
    room = world.new_room()
    minute = timedelta(minutes=1)
    world.feed([
        message(0, "imported", "bob", room=room, occurred_at=MORNING - 30 * minute, recorded_at=MORNING,
                capture=ev.Capture.IMPORT),
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING + 20 * minute,
             recorded_at=MORNING + 20 * minute),
        make(ev.ArchiveGap, 0, room, gap_start=MORNING + 10 * minute, gap_end=MORNING + 20 * minute,
             occurred_at=MORNING + 20 * minute, recorded_at=MORNING + 20 * minute),
        message(0, "last", "alice", room=room, occurred_at=MORNING + 30 * minute, recorded_at=MORNING + 30 * minute),
    ])  # fmt: skip
    compliance = auth(world.compliance)
    said = {}
    for offset in (-40, -1, 0, 5, 10, 15, 20, 25, 29, 31, 50):
        moment = MORNING + offset * minute
        t = format_time(moment)
        presence = world.client.get(f"/api/v1/rooms/{room}/presence?at={t}", headers=compliance).json
        state = world.client.get(f"/api/v1/rooms/{room}/state?at={t}", headers=compliance).json
        bucket = world.client.get(f"/api/v1/rooms/{room}/presence?from={t}&to={format_time(moment + timedelta(seconds=1))}"
                                  f"&buckets=1", headers=compliance).json["occupancy"][0]
        with world.app.test_request_context():
            page = day_presence(room, moment.date(), moment, _compliance_caller(world))
        answers = {presence["known"], state["presence_known"], not bucket["unknown"], page.here is not None}
        assert len(answers) == 1, (offset, presence, state, bucket, page.here)
        said[offset] = presence["known"]
    assert said == {-40: False, -1: False, 0: True, 5: True, 10: False, 15: False, 20: True, 25: True, 29: True,
                    31: False, 50: False}


def test_presence_the_views_have_not_applied_yet_is_not_known(world):
    """The views commit every minute (and an API host may serve views another process keeps): events in the
    log the presence view has not applied yet must not read as absence. Presence is known up to the last
    event the views hold, and a room the view has not reached at all is known at no moment."""
    room, later_room = world.new_room(), world.new_room()
    minute = timedelta(minutes=1)
    world.feed([
        make(ev.RoomDiscovered, 0, room, occurred_at=MORNING, recorded_at=MORNING),
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
        message(0, "morning", "alice", room=room, occurred_at=MORNING + 3 * minute, recorded_at=MORNING + 3 * minute),
    ])  # fmt: skip
    world.store.append([
        make(ev.OccupantJoined, 0, room, nick="bob", occurred_at=MORNING + 5 * minute, recorded_at=MORNING + 5 * minute),
        make(ev.RoomDiscovered, 0, later_room, occurred_at=MORNING + 6 * minute, recorded_at=MORNING + 6 * minute),
        make(ev.OccupantJoined, 0, later_room, nick="carol", occurred_at=MORNING + 6 * minute,
             recorded_at=MORNING + 6 * minute),
        message(0, "later", "alice", room=room, stanza_id="later", occurred_at=MORNING + 10 * minute,
                recorded_at=MORNING + 10 * minute),
    ])  # fmt: skip
    world.app.extensions[EXTENSION]._rooms.clear()
    compliance = auth(world.compliance)

    def asked(which, moment):
        t = format_time(moment)
        presence = world.client.get(f"/api/v1/rooms/{which}/presence?at={t}", headers=compliance).json
        state = world.client.get(f"/api/v1/rooms/{which}/state?at={t}", headers=compliance).json
        bucket = world.client.get(f"/api/v1/rooms/{which}/presence?from={t}&to={format_time(moment + timedelta(seconds=1))}"
                                  f"&buckets=1", headers=compliance).json
        with world.app.test_request_context():
            page = day_presence(which, moment.date(), moment, _compliance_caller(world))
        answers = {presence["known"], state["presence_known"], not bucket["occupancy"][0]["unknown"],
                   page.here is not None}
        assert len(answers) == 1, (which, moment, presence, state, bucket, page)
        return presence, bucket

    there, _ = asked(room, MORNING + 7 * minute)
    assert (there["known"], there["occupants"]) == (False, []), "bob's join is in the log, not yet in the view"
    # Known until the first event the views have not applied (bob's join), not only until the last they hold.
    assert there["known_until"] == format_time(MORNING + 5 * minute - timedelta(microseconds=1))
    assert [o["nick"] for o in there["possibly_present"]] == ["alice"]
    assert [o["nick"] for o in asked(room, MORNING + 4 * minute)[0]["occupants"]] == ["alice"], "the view holds it"
    for moment in (MORNING - 60 * minute, MORNING + 7 * minute):
        there, ranged = asked(later_room, moment)
        assert (there["known"], there["occupants"], there["possibly_present"]) == (False, [], []), moment
        assert [g["kind"] for g in ranged["gaps"]] == ["before_archive"]
        assert "not reached" in ranged["gaps"][0]["explanation"]
    there, _ = asked(later_room, MORNING - 60 * minute)
    assert there["gap"]["kind"] == "before_archive" and "not reached" in there["gap"]["explanation"], there

    world.feed([])
    there, _ = asked(later_room, MORNING + 7 * minute)
    assert there["known"] and [o["nick"] for o in there["occupants"]] == ["carol"]
    there, _ = asked(room, MORNING + 7 * minute)
    assert there["known"] and [o["nick"] for o in there["occupants"]] == ["alice", "bob"]
    assert asked(later_room, MORNING - 60 * minute)[0]["gap"]["end"] == format_time(MORNING + 6 * minute)


def alice_says_good_morning(world) -> str:
    """A new room, projected: alice joined at MORNING and said "morning" three minutes later (its last event)."""
    room = world.new_room()
    world.feed([
        make(ev.RoomDiscovered, 0, room, occurred_at=MORNING, recorded_at=MORNING),
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
        message(0, "morning", "alice", room=room, occurred_at=MORNING + timedelta(minutes=3),
                recorded_at=MORNING + timedelta(minutes=3)),
    ])  # fmt: skip
    return room


def test_the_room_state_without_a_moment_is_at_the_last_known_one(world):
    """`/state` with no `at` is the room as the archive last knew it: "now" is always a little after that
    moment, where presence is not known, so it answered nobody there while people were."""
    room = alice_says_good_morning(world)
    state = world.client.get(f"/api/v1/rooms/{room}/state", headers=auth(world.compliance)).json
    assert state["presence_known"] and [o["nick"] for o in state["occupants"]] == ["alice"], state
    assert state["at"] == format_time(MORNING + timedelta(minutes=3))


def test_a_view_that_has_applied_nothing_yet_bounds_what_is_known(world):
    """The views' runners commit each view on its own: presence may have committed while the transcripts
    have applied nothing yet. That is a view behind the log too (it was read as no bound at all)."""
    room = world.new_room()
    world.store.append([
        make(ev.RoomDiscovered, 0, room, occurred_at=MORNING, recorded_at=MORNING),
        make(ev.OccupantJoined, 0, room, nick="alice", occurred_at=MORNING, recorded_at=MORNING),
    ])  # fmt: skip
    presence = world.views.projections(["presence"])[0]
    presence.apply(list(world.store.read_log()))
    presence.commit(world.store.head())
    world.store.append([make(ev.OccupantJoined, 0, room, nick="bob", occurred_at=MORNING + timedelta(minutes=5),
                             recorded_at=MORNING + timedelta(minutes=5))])
    world.app.extensions[EXTENSION]._rooms.clear()
    t = format_time(MORNING + timedelta(minutes=6))
    there = world.client.get(f"/api/v1/rooms/{room}/presence?at={t}", headers=auth(world.compliance)).json
    assert there["known"] is False, there
    assert there["known_until"] == format_time(MORNING - timedelta(microseconds=1)), "the transcripts hold nothing"


def test_the_rooms_occupants_now_are_the_room_at_the_last_known_moment(world):
    """`/rooms`' occupants now are the room as `/state` without a moment has it, at the archive's last known
    moment: the presence view may have applied a leave the other view has not, which is not known yet (they
    read the presence view at the clock's now, and answered the room empty, known, while `/state` had alice)."""
    room = alice_says_good_morning(world)
    left = MORNING + timedelta(minutes=5)
    world.store.append([make(ev.OccupantLeft, 0, room, nick="alice", occurred_at=left, recorded_at=left)])
    LogFollower(world.store, world.views.projections(["presence"])[0], commit_interval=60).catch_up()
    compliance = auth(world.compliance)
    state = world.client.get(f"/api/v1/rooms/{room}/state", headers=compliance).json
    assert state["at"] == format_time(left - timedelta(microseconds=1)) and len(state["occupants"]) == 1, state
    listed = next(r for r in world.client.get("/api/v1/rooms", headers=compliance).json["rooms"] if r["room"] == room)
    assert (listed["occupants_now"], listed["presence_known"]) == (1, True), listed
    assert listed["presence_as_of"] == state["at"], listed
