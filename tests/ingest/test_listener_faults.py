"""Faults: the listener process killed mid-conversation, the server restarted under the listener."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

from archive import events as ev
from archive.application import open_event_store
from chat_archive.xmpp_users import XmppUsers
from ingest.client import close, session
from ingest.roomview import RoomView
from archive.times import utcnow
from ingest.status import read_status
from tests.ingest.helpers import room_events, running_listener, wait_for_event, wait_joined, write_config
from tests.ingest.test_listener_parts import accepting_inserts, refusing_inserts
from tests.services.prosody import PASSWORD, listener_settings, unique_room, wait_for


def test_killing_the_listener_mid_conversation_loses_nothing_and_duplicates_nothing(prosody, people, tmp_path, start_listen):
    alice, bob, carol, dave = (people[name] for name in ("alice", "bob", "carol", "dave"))
    room = unique_room(prosody, "kill")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    carol.join(room, "carol")
    config, status_file, store_url = write_config(tmp_path, prosody, room)
    listener = start_listen(config, status_file, room)
    sent = []
    for i in range(30):
        sent.append((alice if i % 2 else bob).say(room, f"m{i}"))
        if i == 12:
            os.kill(listener.pid, signal.SIGKILL)  # mid-burst: some messages are in flight
    listener.wait(10)
    carol.leave(room)
    dave.join(room, "dave")
    bob.set_presence(room, "away", "gone fishing")
    sent.append(alice.say(room, "while the listener was dead"))
    listener = start_listen(config, status_file, room)
    sent.append(alice.say(room, "after the restart"))
    with open_event_store(store_url) as store:
        wait_for_event(store, room, ("message", "alice", "after the restart"))
        listener.send_signal(signal.SIGTERM)
        assert listener.wait(15) == 0
        events = room_events(store, room)
    messages = [e for e in events if isinstance(e, ev.MessagePosted)]
    assert [m.body for m in messages] == [f"m{i}" for i in range(30)] + ["while the listener was dead", "after the restart"]
    assert [m.stanza_id for m in messages] == [s["stanza_id"] for s in sent]
    assert messages[-2].capture == ev.Capture.BACKFILL and messages[-1].capture == ev.Capture.LIVE
    [gap] = [e for e in events if isinstance(e, ev.ArchiveGap)]
    assert gap.kind == ev.GapKind.PRESENCE
    after_gap = events[events.index(gap) + 1 :]
    presence = {(type(e).__name__, getattr(e, "nick", None)) for e in after_gap if not isinstance(e, ev.MessagePosted)}
    assert presence == {("OccupantLeft", "carol"), ("OccupantJoined", "dave"), ("PresenceChanged", "bob")}
    assert next(e for e in after_gap if isinstance(e, ev.OccupantLeft)).reason == ev.LeaveReason.LOST_SIGHT
    joins = [e.nick for e in events if isinstance(e, ev.OccupantJoined)]
    assert sorted(joins) == ["alice", "bob", "carol", "dave"], "nobody joins twice"
    assert set(RoomView.from_events(room, events).occupants) == {"alice", "bob", "dave"}


def test_a_stop_while_the_store_refuses_events_fails_and_the_next_start_records_their_time_as_a_gap(
        prosody, people, tmp_path, start_listen, postgres_url):
    """The writer gives up on what the store will not take at a stop: `listen` says so and exits non-zero, and
    its status keeps the time before them (not the stop's), so the next start's gap covers them and the room's
    archive gives the messages back."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "refused")
    alice.create_room(room, "alice")
    config, status_file, store_url = write_config(tmp_path, prosody, room, store_url=postgres_url)
    listener = start_listen(config, status_file, room)
    # The join's own events stored first: the two waiting below are then the ones this test makes, seen before seen_by.
    wait_for(lambda: read_status(status_file).write_queue == 0, 10, message="the join's events to be stored")
    with open_event_store(store_url) as store:
        refusing_inserts(store_url)
        bob.join(room, "bob")
        said = alice.say(room, "while the store refuses")
        wait_for(lambda: (s := read_status(status_file)) and s.write_queue >= 2, 10, message="the events to wait")
        seen_by = utcnow()
        listener.send_signal(signal.SIGTERM)
        assert listener.wait(30) == 1
        assert "the store did not take the last events before the stop" in config.with_suffix(".log").read_text()
        assert read_status(status_file).stored_until <= seen_by
        accepting_inserts(store_url)
        listener = start_listen(config, status_file, room)
        alice.say(room, "after the restart")
        wait_for_event(store, room, ("message", "alice", "after the restart"))
        listener.send_signal(signal.SIGTERM)
        assert listener.wait(15) == 0
        events = room_events(store, room)
    [gap] = [e for e in events if isinstance(e, ev.ArchiveGap)]
    assert gap.gap_start <= seen_by
    [recovered] = [e for e in events if isinstance(e, ev.MessagePosted) and e.stanza_id == said["stanza_id"]]
    assert recovered.capture == ev.Capture.BACKFILL


def test_after_a_server_restart_the_listener_reconnects_rejoins_and_backfills(prosody, tmp_path):
    room = unique_room(prosody, "restart")
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        with XmppUsers("127.0.0.1", prosody.port) as users:
            alice = users.connect("alice@localhost", PASSWORD)
            bob = users.connect("bob@localhost", PASSWORD)
            alice.create_room(room, "alice")
            bob.join(room, "bob")
            alice.say(room, "before the restart")
            with running_listener(prosody, store, include=(room,)) as listener:
                wait_joined(listener, room)
                wait_for_event(store, room, ("joined", "bob"))
                prosody.stop()
                wait_for(lambda: not listener.listener.status.connected, message="the listener to notice")
                time.sleep(1.0)  # the listener retries while the server is down
                prosody.start()
                with XmppUsers("127.0.0.1", prosody.port) as users_again:
                    alice = users_again.connect("alice@localhost", PASSWORD)
                    alice.join(room, "alice")
                    alice.say(room, "right after the restart")
                    wait_for_event(store, room, ("gap", "presence"), timeout=20)
                    wait_joined(listener, room)
                    alice.say(room, "with the listener back")
                    wait_for_event(store, room, ("message", "alice", "with the listener back"))
                    events = room_events(store, room)
    bodies = [e.body for e in events if isinstance(e, ev.MessagePosted)]
    assert bodies == ["before the restart", "right after the restart", "with the listener back"]
    assert len([e for e in events if isinstance(e, ev.ArchiveGap)]) == 1
    # Prosody tells the remaining occupants (the listener) of users whose sessions it closes;
    # whoever it could not tell of is closed out on rejoin: either way everyone leaves once.
    left = [(e.nick, e.reason) for e in events if isinstance(e, ev.OccupantLeft)]
    assert sorted(nick for nick, _ in left).count("bob") == 1
    assert {reason for _, reason in left} <= {ev.LeaveReason.LEFT, ev.LeaveReason.LOST_SIGHT}
    assert set(RoomView.from_events(room, events).occupants) == {"alice"}


def test_a_stanza_on_its_way_out_when_the_listener_stops_is_not_written_to_the_closed_connection(prosody, tmp_path, caplog):
    """slixmpp's send task takes a stanza off its queue, then awaits the outgoing filters (entity caps' is a
    coroutine) before it writes the stanza: a connection closed in between made it log "Exception raised in send
    queue: NotConnectedError" at shutdown, once in a while. A filter of the test's holds one stanza in that window
    until the connection is closing (each turn of the loop; slixmpp sets a filter slower than 1 s aside)."""
    room = unique_room(prosody, "stopping")
    held, released_on_close = threading.Event(), threading.Event()
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        with running_listener(prosody, store, include=(room,)) as handle:
            wait_for(lambda: handle.listener.status.connected, message="the listener to connect")
            client = handle.listener.client

            async def hold(stanza):
                if stanza.xml.get("id") == "held":
                    held.set()
                    deadline = time.monotonic() + 0.9
                    while time.monotonic() < deadline:
                        if client.transport is None or client.transport.is_closing():
                            released_on_close.set()
                            break
                        await asyncio.sleep(0)
                return stanza

            def send_held():
                message = client.make_message(mto=client.boundjid.bare, mbody="to itself")
                message["id"] = "held"
                message.send()

            client.add_filter("out", hold)
            handle.listener._loop.call_soon_threadsafe(send_held)
            assert held.wait(10), "the stanza reached the outgoing filters"
            with caplog.at_level(logging.WARNING):
                handle.stop()
            assert not handle.is_alive() and handle.error is None
    assert released_on_close.is_set(), "the stanza was held until the connection was closing"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_a_close_cancelled_while_the_stream_ends_still_closes_the_connection(prosody):
    """A listener stopping while its connection loop closes a failed session cancels that close in its wait for
    the server's end of stream: the connection must be closed all the same, not left open to the garbage
    collector."""
    async def scenario() -> bool:
        async with session(listener_settings(prosody)) as client:
            graceful = client.disconnect

            async def server_silent(*args, **kwargs):
                await asyncio.sleep(30)

            client.disconnect = server_silent
            closing = asyncio.create_task(close(client))
            await asyncio.sleep(0.2)
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)
            closed = client.transport is None or client.transport.is_closing()
            client.disconnect = graceful
            return closed

    assert asyncio.run(scenario()), "the connection was left open"

