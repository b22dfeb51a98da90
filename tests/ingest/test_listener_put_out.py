"""The listener put out of a room (kicked, the room made members-only, destroyed) against a real Prosody, with
people talking throughout: while it catches a room up after time away, and once the room is no longer listed."""

from __future__ import annotations

from archive import events as ev
from archive.application import open_event_store
from archive.times import utcnow
from tests.ingest.helpers import (
    Traffic, archive_queries_held_after_the_first, archived_stanza_ids, room_events, running_listener,
    wait_discovery_polls, wait_joined,
)
from tests.ingest.test_restart_gaps import gaps_of_a_room_archived_once, wait_all_archived
from tests.services.prosody import unique_room, wait_for

# No server admin (Prosody makes one the owner of every room): a moderator can put this listener out.
PUT_OUT_EASILY = {"jid": "dave@localhost", "retry_refused_after": 1.0}


def destroyed(store, room: str) -> bool:
    return any(isinstance(e, ev.RoomDestroyed) for e in room_events(store, room))


def test_a_kick_during_a_rejoins_catch_up_is_not_undone_and_the_room_is_caught_up_later(prosody, people, tmp_path):
    """Failed before: the join went on after the kick and marked the room joined, the listener out of it: never
    tried again, what the room said from then on lost."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "kickedcatching")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    status_file, settings = tmp_path / "status.json", {"include": (room,), **PUT_OUT_EASILY}
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        with running_listener(prosody, store, status_file, **settings) as listener:
            wait_joined(listener, room)
        stopped = utcnow()
        away = [alice.say(room, f"away {i}")["stanza_id"] for i in range(150)]  # two pages of the room's archive
        traffic = Traffic([alice, bob], [room], prefix="live").start()
        try:
            with running_listener(prosody, store, status_file, **settings) as listener:
                queries, holding = archive_queries_held_after_the_first(listener, room)
                wait_for(lambda: len(queries) >= 2, 20, message="the catch-up held after its first page")
                alice.kick(room, "archive", "not now")
                wait_for(lambda: room in listener.listener.refused_rooms(), message="the listener put out")
                kicked = utcnow()
                holding.clear()  # the held query answered: the cut-off join must not go on
                traffic.sent_at_least(5)  # said while the listener is out
                wait_joined(listener, room, timeout=20)  # tried again after retry_refused_after
                traffic.sent_at_least(5)
                traffic.stop()
                wait_all_archived(store, room, away + traffic.sent[room])
        finally:
            traffic.stop()
        [gap] = gaps_of_a_room_archived_once(store, room)
    assert gap.gap_start <= stopped and gap.gap_end >= kicked, "the time away and the kick in one gap"
    assert gap.verified, gap.explanation


def test_a_destruction_during_a_rejoins_catch_up_ends_the_room_within_a_gap(prosody, people, tmp_path):
    """Failed before: the join went on after the destruction, recorded a gap after it and listed the room joined."""
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    room, other = unique_room(prosody, "doomedcatching"), unique_room(prosody, "talkingon")
    alice.create_room(room, "alice")
    carol.create_room(other, "carol")
    bob.join(other, "bob")
    status_file, settings = tmp_path / "status.json", {"include": (room, other), **PUT_OUT_EASILY}
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        with running_listener(prosody, store, status_file, **settings) as listener:
            wait_joined(listener, room)
            wait_joined(listener, other)
        stopped = utcnow()
        for i in range(150):
            alice.say(room, f"away {i}")
        doomed = Traffic([alice], [room], prefix="doomed").start()
        talk = Traffic([carol, bob], [other], prefix="other").start()
        try:
            with running_listener(prosody, store, status_file, **settings) as listener:
                queries, holding = archive_queries_held_after_the_first(listener, room)
                wait_for(lambda: len(queries) >= 2, 20, message="the catch-up held after its first page")
                doomed.sent_at_least(3)  # seen live, held while the room is caught up
                doomed.stop()
                alice.destroy(room, "project over")
                wait_for(lambda: destroyed(store, room), message="the destruction recorded")
                holding.clear()
                talk.sent_at_least(5)
                wait_joined(listener, other)
                wait_discovery_polls(listener, 2)
                assert listener.joined_rooms() == [other] and listener.listener.refused_rooms() == {}
                talk.stop()
                wait_all_archived(store, other, talk.sent[other])
        finally:
            doomed.stop()
            talk.stop()
        events = room_events(store, room)
        archived = archived_stanza_ids(store, room)
    [gap] = [e for e in events if isinstance(e, ev.ArchiveGap)]
    [end] = [e for e in events if isinstance(e, ev.RoomDestroyed)]
    assert events.index(gap) < events.index(end), "the gap, then what was held, then the end"
    assert (gap.kind, gap.verified, gap.gap_end) == (ev.GapKind.MESSAGES, False, end.occurred_at)
    assert gap.gap_start <= stopped and "destroyed, with its archive" in gap.explanation
    assert doomed.sent[room][-1] in archived, "the messages held were written: the room's archive is gone"


def test_rooms_the_listener_was_put_out_of_are_tried_again_though_no_longer_listed(prosody, people, tmp_path):
    """One made members-only and hidden (the listener removed, status 322), one kicked from and then destroyed.
    Failed before: neither was tried again (only listed, configured and lost rooms were): no rejoin, no gap, no
    end recorded until a restart."""
    alice, bob = people["alice"], people["bob"]
    closed, doomed = unique_room(prosody, "closed"), unique_room(prosody, "kickedgone")
    alice.create_room(closed, "alice")
    bob.create_room(doomed, "bob")
    traffic = Traffic([alice], [closed], prefix="closed")
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        try:
            with running_listener(prosody, store, include=(closed, doomed), **PUT_OUT_EASILY) as listener:
                wait_joined(listener, closed)
                wait_joined(listener, doomed)
                traffic.start().sent_at_least(3)
                alice.configure(closed, **{"muc#roomconfig_membersonly": "1", "muc#roomconfig_publicroom": "0"})
                bob.kick(doomed, "archive", "no bots")
                wait_for(lambda: {closed, doomed} <= set(listener.listener.refused_rooms()), message="both put out")
                put_out = utcnow()
                bob.destroy(doomed, "over")
                traffic.sent_at_least(3)  # said while the listener is out
                alice.set_affiliation(closed, "dave@localhost", "member")
                member = utcnow()
                wait_joined(listener, closed, timeout=20)
                wait_for(lambda: destroyed(store, doomed), 20, message="the destruction found")
                traffic.sent_at_least(3)
                traffic.stop()
                wait_all_archived(store, closed, traffic.sent[closed])
        finally:
            traffic.stop()
        [gap] = gaps_of_a_room_archived_once(store, closed)
        [found] = [e for e in room_events(store, doomed) if isinstance(e, ev.ArchiveGap)]
    assert gap.gap_start <= put_out and gap.gap_end >= member and gap.verified, gap.explanation
    assert found.gap_start <= put_out and found.kind == ev.GapKind.MESSAGES
