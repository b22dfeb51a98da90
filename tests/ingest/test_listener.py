"""The listener against a real Prosody with real user clients: what the archive holds, in order."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from slixmpp import ET

from archive import events as ev
from archive.application import open_event_store
from archive.times import utcnow
from archive.lease import LeaseHeld
from ingest.listener import Listener
from ingest.listener_thread import ListenerHandle, start_listener
from ingest.status import read_status
from tests.ingest.helpers import (
    GatedStore, room_events, room_summary, running_listener, wait_discovery_polls, wait_for_event, wait_joined,
)
from tests.factories import make, message
from tests.services.prosody import listener_settings, unique_room, wait_for

WHOIS_ANYONE = {"muc#roomconfig_whois": "anyone"}


@pytest.fixture
def store(tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        yield store


def test_a_conversation_is_archived_exactly_and_in_order(prosody, people, event_store, tmp_path):
    alice, bob, carol, dave = (people[name] for name in ("alice", "bob", "carol", "dave"))
    room = unique_room(prosody, "talk")
    alice.create_room(room, "alice", **WHOIS_ANYONE)
    with running_listener(prosody, event_store, tmp_path / "status.json", include=(room,)) as listener:
        wait_joined(listener, room)
        bob.join(room, "bob")
        hello = alice.say(room, "hello bob")
        hi = bob.say(room, "hi alice")
        bob.set_presence(room, "away", "lunch")
        bob.change_nick(room, "bobby")
        carol.join(room, "carol", show="dnd")
        alice.set_subject(room, "Release day")
        fixed = alice.correct(room, hello["id"], "hello, bob")
        alice.retract(room, fixed["stanza_id"])
        alice.moderate(room, hi["stanza_id"], "off topic")
        alice.set_role(room, "bobby", "moderator")
        alice.set_affiliation(room, "carol@localhost", "member")
        alice.kick(room, "carol", "too loud")
        dave.join(room, "dave")
        alice.ban(room, "dave@localhost", "spam")
        bob.leave(room, "bye")
        summary = wait_for_event(event_store, room, ("left", "bobby", "left"))
        count = len(summary)
        status = wait_for(
            lambda: (s := read_status(tmp_path / "status.json")) and s.events_written >= count and s,
            message="the status file to count every event",
        )
    assert summary == [
        ("discovered",),
        ("joined", "alice"),
        ("joined", "bob"),
        ("message", "alice", "hello bob"),
        ("message", "bob", "hi alice"),
        ("presence", "bob", "away", "lunch"),
        ("nick", "bob", "bobby"),
        ("presence", "bobby", None, None),  # the nick change presence carried no show/status
        ("joined", "carol"),
        ("subject", "alice", "Release day"),
        ("corrected", "alice", "hello, bob"),
        ("retracted", fixed["stanza_id"], False),
        ("retracted", hi["stanza_id"], True),
        ("role", "bobby", "moderator"),
        ("affiliation", "carol", "member"),
        ("left", "carol", "kicked"),
        ("joined", "dave"),
        ("left", "dave", "banned"),
        ("left", "bobby", "left"),
    ]
    events = room_events(event_store, room)
    alice_joined, carol_joined = events[1], events[8]
    assert (alice_joined.jid, alice_joined.role, alice_joined.affiliation) == ("alice@localhost", "moderator", "owner")
    assert (carol_joined.show, carol_joined.jid) == ("dnd", "carol@localhost")
    posted, corrected = events[3], events[10]
    assert (posted.stanza_id, posted.message_id, posted.origin_id) == (hello["stanza_id"], hello["id"], hello["origin_id"])
    assert corrected.replaces_id == hello["id"] and corrected.stanza_id == fixed["stanza_id"]
    moderated = events[12]
    assert (moderated.by_nick, moderated.reason) == ("alice", "off topic")
    kicked, banned = events[15], events[17]
    assert (kicked.actor, kicked.reason_text) == ("alice", "too loud")
    assert banned.reason_text == "spam"
    assert all(e.capture == ev.Capture.LIVE for e in events)
    assert status.rooms_joined == [room] and status.connected and status.last_event_at >= events[-1].recorded_at


def test_first_join_imports_the_archive_and_a_restart_duplicates_nothing(prosody, people, store, tmp_path):
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "import")
    alice.create_room(room, "alice")
    before = [alice.say(room, f"early {i}") for i in range(3)]
    status_file = tmp_path / "status.json"
    with running_listener(prosody, store, status_file, include=(room,)) as listener:
        wait_joined(listener, room)
        alice.say(room, "while listening")
        wait_for_event(store, room, ("message", "alice", "while listening"))
    bob.join(room, "bob")
    alice.say(room, "while away")
    alice.moderate(room, before[0]["stanza_id"], "old news")
    with running_listener(prosody, store, status_file, include=(room,)) as listener:
        wait_joined(listener, room)
        alice.say(room, "back again")
        summary = wait_for_event(store, room, ("message", "alice", "back again"))
    assert summary == [
        ("discovered",),
        ("message", "alice", "early 0"),
        ("message", "alice", "early 1"),
        ("message", "alice", "early 2"),
        ("joined", "alice"),
        ("message", "alice", "while listening"),
        ("message", "alice", "while away"),
        ("retracted", before[0]["stanza_id"], True),  # moderated while away: in the room's archive too
        ("gap", "presence"),
        ("joined", "bob"),
        ("message", "alice", "back again"),
    ]
    events = room_events(store, room)
    assert not any(e.capture == ev.Capture.HISTORY for e in events), "a MAM room is joined without history"
    assert [e.capture for e in events[1:4]] == [ev.Capture.IMPORT] * 3
    assert [e.stanza_id for e in events[1:4]] == [m["stanza_id"] for m in before]
    assert events[6].capture == events[7].capture == ev.Capture.BACKFILL
    assert (events[7].by_nick, events[7].reason) == ("alice", "old news")
    gap = events[8]
    # MAM stamps (Prosody) have whole seconds.
    assert gap.gap_start.replace(microsecond=0) <= events[6].occurred_at <= gap.gap_end


def test_without_import_archive_the_first_join_takes_no_history(prosody, people, store):
    alice = people["alice"]
    room = unique_room(prosody, "noimport")
    alice.create_room(room, "alice")
    alice.say(room, "before the archive existed")
    with running_listener(prosody, store, include=(room,), import_archive=False) as listener:
        wait_joined(listener, room)
        alice.say(room, "first archived")
        summary = wait_for_event(store, room, ("message", "alice", "first archived"))
    assert summary == [("discovered",), ("joined", "alice"), ("message", "alice", "first archived")]


def test_a_live_message_with_a_delay_claiming_the_room_is_archived_at_its_arrival(prosody, people, store):
    """Only history the room replays on join carries the room's delay; an occupant's client can add a <delay
    from=room> to any message it posts (the server passes it on), which must not backdate it."""
    alice = people["alice"]
    room = unique_room(prosody, "backdate")
    alice.create_room(room, "alice")
    with running_listener(prosody, store, include=(room,)) as listener:
        wait_joined(listener, room)
        forged = ET.Element("{urn:xmpp:delay}delay", {"from": room, "stamp": "2020-01-01T09:00:00Z"})
        alice.say(room, "backdated?", elements=(forged,))
        wait_for_event(store, room, ("message", "alice", "backdated?"))
    posted = room_events(store, room)[-1]
    assert posted.capture == ev.Capture.LIVE
    assert utcnow() - posted.occurred_at < timedelta(minutes=1)


def test_a_destroyed_room_is_recorded_and_its_occupants_closed_out(prosody, people, store):
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "doomed")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    with running_listener(prosody, store, include=(room,)) as listener:
        wait_joined(listener, room)
        alice.destroy(room, "project over")
        summary = wait_for_event(store, room, ("destroyed", "project over"))
        wait_for(lambda: room not in listener.joined_rooms(), message="the listener to leave")
        assert listener.listener.refused_rooms() == {}, "a destroyed room is gone, not refused"
        summary = wait_for(lambda: (s := room_summary(store, room)) and len(s) >= 6 and s)
    # The room announces its occupants in no particular order.
    assert summary[0] == ("discovered",) and sorted(summary[1:3]) == [("joined", "alice"), ("joined", "bob")]
    assert summary[3] == ("destroyed", "project over")
    assert sorted(summary[4:]) == [("left", "alice", "room_destroyed"), ("left", "bob", "room_destroyed")]


def test_a_room_without_mam_replays_only_recent_history_and_records_a_message_gap(prosody, people, store, tmp_path):
    alice = people["alice"]
    room = unique_room(prosody, "plain", service=prosody.plain_muc_service)
    alice.create_room(room, "alice")
    alice.say(room, "said before")
    status_file = tmp_path / "status.json"
    with running_listener(prosody, store, status_file, include=(room,)) as listener:
        wait_joined(listener, room)
        alice.say(room, "said live")
        wait_for_event(store, room, ("message", "alice", "said live"))
    alice.say(room, "said while away")
    with running_listener(prosody, store, status_file, include=(room,)) as listener:
        wait_joined(listener, room)
        summary = wait_for_event(store, room, ("gap", "messages"))
    assert summary == [
        ("discovered",),
        ("message", "alice", "said before"),  # the room's history, replayed on the first join
        ("joined", "alice"),
        ("message", "alice", "said live"),
        ("message", "alice", "said while away"),  # replayed since the last archived message
        ("gap", "messages"),
    ]
    events = room_events(store, room)
    assert [e.capture for e in events if isinstance(e, ev.MessagePosted)] == [
        ev.Capture.HISTORY, ev.Capture.LIVE, ev.Capture.HISTORY
    ]
    assert all(e.stanza_id is None for e in events if isinstance(e, ev.MessagePosted))


def test_a_kicked_listener_closes_out_occupants_and_comes_back_with_a_gap(prosody, people, store):
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "kicked")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    alice.say(room, "before")
    settings = {"jid": "dave@localhost", "include": (room,), "retry_refused_after": 2.0}
    with running_listener(prosody, store, **settings) as listener:
        wait_joined(listener, room)
        alice.kick(room, "archive", "no bots")
        wait_for(lambda: room in listener.listener.refused_rooms(), message="the listener to be out")
        alice.say(room, "while the listener was out")
        bob.leave(room)
        wait_for_event(store, room, ("gap", "presence"))
        wait_joined(listener, room)
    summary = room_summary(store, room)
    assert summary[:2] == [("discovered",), ("message", "alice", "before")]
    assert sorted(summary[2:4]) == [("joined", "alice"), ("joined", "bob")]
    assert sorted(summary[4:6]) == [("left", "alice", "lost_sight"), ("left", "bob", "lost_sight")]
    assert summary[6:] == [("message", "alice", "while the listener was out"), ("gap", "presence"), ("joined", "alice")]


def test_backfill_after_an_id_the_server_does_not_know_reads_by_time(prosody, people, store, caplog):
    caplog.set_level(logging.INFO, logger="ingest.backfill")
    alice = people["alice"]
    room = unique_room(prosody, "foreign")
    alice.create_room(room, "alice")
    sent = [alice.say(room, f"m{i}") for i in range(3)]
    # The archive already holds the room, ending with an id from some other archive.
    earlier = utcnow() - timedelta(minutes=5)
    store.append([
        make(ev.RoomDiscovered, room=room, occurred_at=earlier),
        message(room=room, nick="someone", stanza_id="not-from-this-server", occurred_at=earlier),
    ])
    with running_listener(prosody, store, include=(room,)) as listener:
        wait_joined(listener, room)
        alice.say(room, "live")
        wait_for_event(store, room, ("message", "alice", "live"))
    messages = [e for e in room_events(store, room) if isinstance(e, ev.MessagePosted) and e.nick == "alice"]
    assert [m.body for m in messages] == ["m0", "m1", "m2", "live"]
    assert [m.stanza_id for m in messages[:3]] == [m["stanza_id"] for m in sent]
    assert [m.capture for m in messages[:3]] == [ev.Capture.BACKFILL] * 3
    # The room's archive starts after the last archived message: what was said between cannot be
    # proven complete, and the gap says so.
    [gap] = [e for e in room_events(store, room) if isinstance(e, ev.ArchiveGap)]
    assert (gap.kind, gap.recovered, gap.verified) == (ev.GapKind.MESSAGES, 3, False)
    assert "no longer holds the last archived message (not-from-this-server)" in gap.explanation
    assert any("does not know id not-from-this-server" in r.getMessage() for r in caplog.records)


def test_a_room_destroyed_while_the_listener_was_away_is_recorded_within_a_gap(prosody, people, store, tmp_path):
    alice, bob = people["alice"], people["bob"]
    room, other = unique_room(prosody, "vanished"), unique_room(prosody, "vanished")
    alice.create_room(room, "alice")
    bob.create_room(other, "bob")
    status_file = tmp_path / "status.json"
    with running_listener(prosody, store, status_file, include=(room, other)) as listener:
        wait_joined(listener, room)
        wait_joined(listener, other)
    stopped = utcnow()
    alice.say(room, "said while nobody watched")  # lost with the room's archive
    alice.destroy(room, "gone for good")
    with running_listener(prosody, store, status_file, include=(room, other)) as listener:
        wait_joined(listener, other)
        bob.say(other, "the other room talks on")  # live traffic while the vanished room is found gone
        wait_for(lambda: any(isinstance(e, ev.RoomDestroyed) for e in room_events(store, room)), message="the end")
        wait_for_event(store, other, ("message", "bob", "the other room talks on"))
        wait_discovery_polls(listener, 2)  # the room is not tried again
        assert listener.listener.refused_rooms() == {} and listener.joined_rooms() == [other]
    found = utcnow()
    # Nobody saw alice leave nor the room end: both happened at an unknown time while the listener was away.
    gap, left, destroyed = events = room_events(store, room)[2:]
    assert room_summary(store, room)[:2] == [("discovered",), ("joined", "alice")]
    assert [type(e) for e in events] == [ev.ArchiveGap, ev.OccupantLeft, ev.RoomDestroyed]
    assert (gap.kind, left.nick, left.reason) == (ev.GapKind.MESSAGES, "alice", ev.LeaveReason.LOST_SIGHT)
    assert gap.gap_start <= stopped and gap.verified is False and gap.recovered == 0
    assert "destroyed" in gap.explanation and "messages and presence may be missing" in gap.explanation
    assert left.occurred_at == destroyed.occurred_at == gap.gap_end <= found
    assert "at an unknown time" in destroyed.reason


def test_affiliation_changes_of_users_not_in_the_room(prosody, people, store):
    alice = people["alice"]
    room = unique_room(prosody, "absent")
    alice.create_room(room, "alice")
    with running_listener(prosody, store, include=(room,)) as listener:
        wait_joined(listener, room)
        alice.set_affiliation(room, "carol@localhost", "member")
        alice.ban(room, "dave@localhost", "pre-emptive")
        summary = wait_for_event(store, room, ("affiliation", "dave@localhost", "outcast"))
    assert summary[-2:] == [("affiliation", "carol@localhost", "member"), ("affiliation", "dave@localhost", "outcast")]


def test_a_second_listener_on_the_same_store_is_refused(prosody, store):
    with running_listener(prosody, store, include=("nothing-*",)) as first:
        with pytest.raises(LeaseHeld, match="listener lease is held by"):
            start_listener(listener_settings(prosody), store)
        assert first.is_alive()
    start_listener(listener_settings(prosody), store).stop()  # released on stop


def test_a_full_write_queue_pauses_reading_from_the_server_and_loses_nothing(prosody, people, store):
    alice = people["alice"]
    room = unique_room(prosody, "pressure")
    alice.create_room(room, "alice")
    gated = GatedStore(store)
    listener = Listener(listener_settings(prosody, include=(room,)), gated, write_queue_limit=5)
    listener.acquire()
    handle = ListenerHandle(listener, threading.Event()).start()
    try:
        wait_joined(handle, room, timeout=30)
        gated.gate.clear()
        sent = [alice.say(room, f"p{i}")["stanza_id"] for i in range(20)]
        wait_for(lambda: listener.status.input_paused, 30, message="reading paused")
        gated.gate.set()
        wait_for(lambda: [r.event.stanza_id for r in store.read_room(room) if isinstance(r.event, ev.MessagePosted)] == sent,
                 30, message="every message archived, in order")
        wait_for(lambda: not listener.status.input_paused, 30, message="reading resumed")
    finally:
        gated.gate.set()
        handle.stop()
