"""Time away that a restart must not forget: a listener stopped while it caught a room up, or while it was
disconnected, leaves the room's gap open in its status; the next start records the gap from where it began."""

from __future__ import annotations

import threading

import pytest

from archive import events as ev
from archive.errors import ChatArchiveError
from archive.application import open_event_store
from archive.times import utcnow
from ingest.xmlutil import MAM, q
from tests.ingest.helpers import (
    Traffic, archived_stanza_ids, room_events, running_listener, wait_for_event, wait_joined,
)
from tests.ingest.test_listener_parts import accepting_inserts, refusing_inserts
from tests.services.prosody import unique_room, wait_for
from tests.services.tcp_proxy import TcpProxy


def unanswered_after_first_archive_page(handle) -> tuple[list, threading.Event]:
    """From the listener's second MAM query on, its queries are lost on their way to the server until the event
    returned is cleared: a catch-up stalls after its first page, as on a server that stops answering.
    Returns the queries sent, and the event."""
    queries, stalling = [], threading.Event()
    stalling.set()

    def drop(stanza):
        if stanza.xml.find(q(MAM, "query")) is not None:
            queries.append(stanza)
            if len(queries) > 1 and stalling.is_set():
                return None
        return stanza

    client = wait_for(lambda: handle.listener.client, message="the listener's client")
    client.add_filter("out", drop)
    return queries, stalling


def backfilled(store, room: str) -> list[ev.MessagePosted]:
    return [e for e in room_events(store, room) if isinstance(e, ev.MessagePosted) and e.capture == ev.Capture.BACKFILL]


def wait_all_archived(store, room: str, stanza_ids: list[str]) -> None:
    wait_for(lambda: set(stanza_ids) <= set(archived_stanza_ids(store, room)), 20, message="every message archived")


def gaps_of_a_room_archived_once(store, room: str) -> list[ev.ArchiveGap]:
    """The room's gap records, once no message is archived twice."""
    events = room_events(store, room)
    archived = [e.stanza_id for e in events if isinstance(e, ev.MessagePosted)]
    assert len(archived) == len(set(archived)), "a message archived twice"
    return [e for e in events if isinstance(e, ev.ArchiveGap)]


def test_a_stop_during_a_catch_up_after_a_restart_leaves_the_time_away_to_the_next_start_on_any_host(
        prosody, people, store_url, tmp_path):
    """The stopped catch-up wrote part of the room's archive (recorded at the time it was read) but not its gap:
    the next start's gap must begin where the first listener stopped watching, not at that partial backfill. Each
    start on another host (a status file of its own, none there yet), as after a takeover: the store has the rest."""
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    room = unique_room(prosody, "stalled")
    alice.create_room(room, "alice")
    carol.join(room, "carol")
    host_a, host_b, host_c = (tmp_path / host / "status.json" for host in ("a", "b", "c"))
    with open_event_store(store_url) as store:
        with running_listener(prosody, store, host_a, include=(room,)) as listener:
            wait_joined(listener, room)
            alice.say(room, "before the stop")
            wait_for_event(store, room, ("message", "alice", "before the stop"))
        stopped = utcnow()
        away = [alice.say(room, f"away {i}")["stanza_id"] for i in range(150)]  # two pages of the room's archive
        bob.join(room, "bob")
        bob.leave(room)
        bob_gone = utcnow()
        traffic = Traffic([alice, carol], [room], prefix="live").start()
        try:
            with running_listener(prosody, store, host_b, include=(room,)) as listener:
                queries, _ = unanswered_after_first_archive_page(listener)
                # The first page's first messages may be stored while the rest is still read: the second query after.
                wait_for(lambda: backfilled(store, room) and len(queries) == 2, 20, message="the first page stored")
                assert room not in listener.joined_rooms(), "stopped while catching up"
                traffic.sent_at_least(5)
            traffic.sent_at_least(5)  # nobody listens
            with running_listener(prosody, store, host_c, include=(room,)) as listener:
                wait_joined(listener, room, timeout=20)
                traffic.sent_at_least(5)  # the recovery under live traffic
                traffic.stop()
                wait_all_archived(store, room, away + traffic.sent[room])
        finally:
            traffic.stop()
        gaps = gaps_of_a_room_archived_once(store, room)
    assert gaps, "no gap recorded"
    first = min(gaps, key=lambda g: g.gap_start)
    assert first.gap_start <= stopped, f"the gap starts at {first.gap_start}, after the stop at {stopped}: bob's visit is in no gap"
    assert max(g.gap_end for g in gaps) >= bob_gone


def test_a_catch_up_after_a_restart_cut_off_by_a_disconnect_keeps_the_gaps_start_for_the_rejoin(prosody, people, tmp_path):
    """The same within one run: the rejoin after the disconnect must not begin the gap at the partial backfill."""
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    room = unique_room(prosody, "recut")
    alice.create_room(room, "alice")
    carol.join(room, "carol")
    status_file = tmp_path / "status.json"
    with TcpProxy("127.0.0.1", prosody.port) as proxy, open_event_store(f"sqlite:///{tmp_path}/e.sqlite") as store:
        with running_listener(prosody, store, status_file, include=(room,)) as listener:
            wait_joined(listener, room)
        stopped = utcnow()
        away = [alice.say(room, f"away {i}")["stanza_id"] for i in range(150)]
        bob.join(room, "bob")
        bob.leave(room)
        traffic = Traffic([alice, carol], [room], prefix="live").start()
        try:
            with running_listener(prosody, store, status_file, port=proxy.port, include=(room,)) as listener:
                queries, stalling = unanswered_after_first_archive_page(listener)
                wait_for(lambda: backfilled(store, room), 20, message="the first page of the catch-up stored")
                proxy.cut()
                wait_for(lambda: not listener.listener.status.connected, message="the listener to notice")
                stalling.clear()
                traffic.sent_at_least(5)
                proxy.restore()
                wait_joined(listener, room, timeout=30)
                traffic.sent_at_least(5)
                traffic.stop()
                wait_all_archived(store, room, away + traffic.sent[room])
        finally:
            traffic.stop()
        gaps = gaps_of_a_room_archived_once(store, room)
    [gap] = gaps
    assert gap.gap_start <= stopped, f"the gap starts at {gap.gap_start}, after the stop at {stopped}"


def test_a_listener_stopped_while_disconnected_leaves_its_rooms_time_away_to_the_next_start(prosody, people, tmp_path):
    """Stopped while the server was unreachable, the listener had joined no room: its rooms' gaps are still open
    and the next start checks them, listed or not (one destroyed meanwhile is recorded destroyed, within a gap)."""
    alice, bob = people["alice"], people["bob"]
    room, other = unique_room(prosody, "unreached"), unique_room(prosody, "unreached")
    alice.create_room(room, "alice")
    bob.create_room(other, "bob")
    status_file = tmp_path / "status.json"
    with TcpProxy("127.0.0.1", prosody.port) as proxy, open_event_store(f"sqlite:///{tmp_path}/e.sqlite") as store:
        with running_listener(prosody, store, status_file, port=proxy.port, include=(room, other)) as listener:
            wait_joined(listener, room)
            wait_joined(listener, other)
            proxy.cut()  # the server unreachable: the listener backs off and retries
            cut = utcnow()
            wait_for(lambda: not listener.listener.status.connected, message="the listener to notice")
            alice.say(room, "said while nobody watched")
            alice.destroy(room, "gone for good")
            bob.say(other, "the other room talks on")
        with running_listener(prosody, store, status_file, include=(room, other)) as listener:
            wait_joined(listener, other)
            bob.say(other, "live while the rooms are checked")
            wait_for(lambda: any(isinstance(e, ev.RoomDestroyed) for e in room_events(store, room)), 10,
                     message="the room recorded destroyed")
            wait_for_event(store, other, ("message", "bob", "live while the rooms are checked"))
        events, others = room_events(store, room), room_events(store, other)
    [gap] = [e for e in events if isinstance(e, ev.ArchiveGap)]
    assert gap.gap_start <= cut and gap.kind == ev.GapKind.MESSAGES
    [other_gap] = [e for e in others if isinstance(e, ev.ArchiveGap)]
    assert other_gap.gap_start <= cut
    assert [e.body for e in others if isinstance(e, ev.MessagePosted)] == [
        "the other room talks on", "live while the rooms are checked",
    ]


def test_a_gap_record_the_store_refuses_at_a_stop_is_owed_by_the_next_start(prosody, people, postgres_url, tmp_path):
    """The rejoin completed and its catch-up was stored, but its gap record was given up at the stop: the room is
    watched again, yet its time away is in no gap. The next start must record it, from where it began."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "owed")
    alice.create_room(room, "alice")
    status_file = tmp_path / "status.json"
    with open_event_store(postgres_url) as store:
        with running_listener(prosody, store, status_file, include=(room,)) as listener:
            wait_joined(listener, room)
        stopped = utcnow()
        for i in range(3):
            alice.say(room, f"away {i}")
        bob.join(room, "bob")
        bob.leave(room)
        refusing_inserts(postgres_url, topic="archive_gap")  # the catch-up is stored, its gap record refused
        with pytest.raises(ChatArchiveError, match="did not take the last events"):
            with running_listener(prosody, store, status_file, include=(room,)) as listener:
                wait_joined(listener, room, timeout=20)
                wait_for_event(store, room, ("message", "alice", "away 2"))  # the catch-up is stored
                alice.say(room, "live while the gap record waits")
        accepting_inserts(postgres_url)
        with running_listener(prosody, store, status_file, include=(room,)) as listener:
            wait_joined(listener, room)
            alice.say(room, "after the restart")
            wait_for_event(store, room, ("message", "alice", "after the restart"))
        events = room_events(store, room)
    gaps = [e for e in events if isinstance(e, ev.ArchiveGap)]
    assert gaps and min(g.gap_start for g in gaps) <= stopped, [(g.gap_start, g.gap_end) for g in gaps]
    bodies = [e.body for e in events if isinstance(e, ev.MessagePosted)]
    assert bodies == ["away 0", "away 1", "away 2", "live while the gap record waits", "after the restart"]


def test_what_waited_behind_events_a_stop_gave_up_on_is_given_up_too_so_the_next_gap_covers_them(
        prosody, people, postgres_url, tmp_path):
    """The store refuses one batch (bob's join) and would take the messages queued behind it. Stored, they moved the
    room's last event (and its archive anchor) past the hole: the next start's gap began after it, bob's join in no
    gap. Failed before: the gap began at the last message stored after the hole."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "hole")
    alice.create_room(room, "alice")
    status_file = tmp_path / "status.json"
    traffic = Traffic([alice], [room], prefix="live")
    try:
        with open_event_store(postgres_url) as store:
            with pytest.raises(ChatArchiveError, match="did not take the last events"):
                with running_listener(prosody, store, status_file, include=(room,)) as listener:
                    wait_joined(listener, room)
                    traffic.start().sent_at_least(3)
                    traffic.pause()
                    wait_all_archived(store, room, traffic.sent[room])
                    refusing_inserts(postgres_url, topic="occupant_joined")
                    bob.join(room, "bob")
                    wait_for(lambda: "could not append 1 events" in (listener.listener.status.last_error or ""),
                             message="bob's join refused")
                    seen = utcnow()  # bob's join was seen before this; what the room says next, after it
                    traffic.resume()
                    wait_for(lambda: listener.listener.writer.pending >= 3, message="messages waiting behind it")
            accepting_inserts(postgres_url)
            with running_listener(prosody, store, status_file, include=(room,)) as listener:
                wait_joined(listener, room, timeout=20)
                traffic.sent_at_least(5)
                traffic.stop()
                wait_all_archived(store, room, traffic.sent[room])
            gaps = gaps_of_a_room_archived_once(store, room)
            bob_joined = [e for e in room_events(store, room) if isinstance(e, ev.OccupantJoined) and e.nick == "bob"]
    finally:
        traffic.stop()
    [gap] = gaps
    assert gap.gap_start <= seen, f"the gap starts at {gap.gap_start}, after bob's join (seen by {seen})"
    assert [e.recorded_at >= gap.gap_start for e in bob_joined] == [True], "bob's join recorded once, within the gap"
