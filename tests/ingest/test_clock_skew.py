"""The listener's clock against the XMPP server's (XEP-0202 Entity Time): measured at connect, shown in the
status, and allowed for where the catch-up compares the store (live copies, stamped on the listener's clock)
with the room's archive (stamped on the server's)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from archive import events as ev
from archive.application import open_event_store
from archive.times import utcnow
from ingest.catchup import archive_end, store_read_start
from ingest.clock import clock_offset
from ingest.listener_thread import start_listener
from ingest.status import ListenerStatus, assess, describe
from tests.ingest.helpers import archived_stanza_ids, room_events
from tests.services.prosody import listener_settings, start_prosody, unique_room, wait_for

T = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
# The listener's clock this far behind the server's: past the warning, and short of the time between the two
# messages below less the overlap, so the reconciliation's span (its end the join's time on the listener's
# clock) still holds the earlier one.
BEHIND = timedelta(seconds=45)


def behind_clock():
    return utcnow() - BEHIND


def far_behind():
    return utcnow() - timedelta(seconds=120)


def test_the_offset_is_the_servers_time_less_the_round_trips_midpoint():
    assert clock_offset(T, T + timedelta(seconds=2), T + timedelta(seconds=121)) == timedelta(seconds=120)
    assert clock_offset(T, T, T - timedelta(seconds=5)) == timedelta(seconds=-5)


def test_the_store_is_read_from_before_the_start_by_the_skew_whichever_clock_is_ahead():
    assert store_read_start(T, timedelta(seconds=90)) == T - timedelta(seconds=90)
    assert store_read_start(T, timedelta(seconds=-90)) == T - timedelta(seconds=90)
    assert store_read_start(T, None) == T  # unknown: as before
    assert store_read_start(None, timedelta(seconds=90)) is None  # the whole room


def test_the_archive_is_read_up_to_the_join_on_the_servers_clock():
    assert archive_end(T, timedelta(seconds=120)) == T + timedelta(seconds=120)
    assert archive_end(T, timedelta(seconds=-120)) == T - timedelta(seconds=120)
    assert archive_end(T, None) == T


def _status(offset: float | None, unknown: str | None = None) -> ListenerStatus:
    return ListenerStatus(
        jid="a@b", pid=1, started_at=T, updated_at=T, connected=True, clock_offset=offset, clock_unknown=unknown
    )


def test_liveness_warns_of_a_skew_beyond_30_s_and_says_loudly_when_copies_may_be_stored_twice():
    def problems(offset):
        return assess(_status(offset), T, host="h", alive=lambda _: True).problems

    assert problems(None) == [] and problems(29.0) == [] and problems(-29.0) == []
    [warning] = problems(-45.0)
    assert "45 s" in warning and "ahead" in warning
    [loud] = problems(400.0)
    assert "400 s" in loud and "twice" in loud
    assert not assess(_status(400.0), T, host="h", alive=lambda _: True).ok


def test_status_says_the_offset_or_why_it_is_unknown():
    assert any("120 s behind the server" in line for line in describe(_status(120.0)))
    assert any("unknown" in line and "XEP-0202" in line for line in describe(_status(None, "no XEP-0202")))


@pytest.fixture
def store(tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        yield store


def _listen(server, store, room, clock=utcnow):
    return start_listener(listener_settings(server, include=(room,)), store, clock=clock)


def test_status_reports_the_offset_of_a_listener_whose_clock_is_behind(prosody, store):
    room = unique_room(prosody, "skew")
    handle = _listen(prosody, store, room, behind_clock)
    try:
        wait_for(lambda: handle.listener.status.clock_offset is not None, message="the clock offset measured")
        # Prosody tells its time in whole seconds: within a second and the loopback round trip.
        assert abs(handle.listener.status.clock_offset - BEHIND.total_seconds()) < 2
        assert any("behind the server" in line for line in describe(handle.listener.status))
    finally:
        handle.stop()


def test_a_server_without_entity_time_leaves_the_offset_unknown(tmp_path, store):
    server = start_prosody(tmp_path / "prosody", entity_time=False)
    try:
        room = unique_room(server, "notime")
        handle = _listen(server, store, room)
        try:
            wait_for(lambda: handle.listener.status.clock_unknown, message="the offset found unknown")
            assert handle.listener.status.clock_offset is None
            assert any("unknown" in line for line in describe(handle.listener.status))
        finally:
            handle.stop()
    finally:
        server.stop()


def _archived_live(server, store, room: str, clock, say) -> list[str]:
    """Run a listener on ``clock`` in ``room`` while ``say()`` says messages; their stanza-ids, archived live."""
    handle = _listen(server, store, room, clock)
    try:
        wait_for(lambda: room in handle.joined_rooms(), message="the room joined")
        said = say()
        wait_for(lambda: archived_stanza_ids(store, room) == said, message="archived live")
        return said
    finally:
        handle.stop()


def _gap_of_rejoin(server, store, room: str, clock) -> ev.ArchiveGap:
    """Run a listener on ``clock`` until it rejoined ``room`` and recorded the gap; the gap."""
    handle = _listen(server, store, room, clock)
    try:
        wait_for(lambda: [e for e in room_events(store, room) if isinstance(e, ev.ArchiveGap)], message="the gap")
    finally:
        handle.stop()
    [gap] = [e for e in room_events(store, room) if isinstance(e, ev.ArchiveGap)]
    return gap


def test_a_catch_up_with_a_clock_behind_the_servers_finds_every_stored_live_message(prosody, people, event_store):
    # A live message stamped (on the listener's clock, 45 s behind) more than the overlap before the anchor: the
    # archive's copy is stamped 45 s later, inside the span the reconciliation reads, so the store must be read
    # from that far back too, or the message counts as missing and "could not be stored".
    room = unique_room(prosody, "skewed")
    alice = people["alice"]
    alice.create_room(room, "alice")

    def say():
        early = alice.say(room, "early")["stanza_id"]
        time.sleep(61)  # the overlap (60 s) is real time on both clocks
        return [early, alice.say(room, "late")["stanza_id"]]

    said = _archived_live(prosody, event_store, room, behind_clock, say)
    gap = _gap_of_rejoin(prosody, event_store, room, behind_clock)
    assert "could not be stored" not in gap.explanation, gap.explanation
    assert gap.verified is True, gap.explanation
    assert archived_stanza_ids(event_store, room) == said


def test_a_catch_up_with_a_clock_far_behind_checks_the_whole_span_away(prosody, people, event_store):
    # 120 s behind: the join's time on the listener's clock is two minutes before the server's. The check of the
    # span away must read the room's archive up to the join as the server stamps it, or it compares nothing and
    # calls an empty comparison complete.
    room = unique_room(prosody, "farbehind")
    alice = people["alice"]
    alice.create_room(room, "alice")
    said = _archived_live(prosody, event_store, room, far_behind, lambda: [alice.say(room, "seen live")["stanza_id"]])
    away = alice.say(room, "said while away")["stanza_id"]
    gap = _gap_of_rejoin(prosody, event_store, room, far_behind)
    assert "holds 2 messages for the span, all archived" in gap.explanation, gap.explanation
    assert archived_stanza_ids(event_store, room) == [*said, away]
