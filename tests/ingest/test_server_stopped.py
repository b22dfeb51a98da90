"""A server that stops answering without closing anything: the test's own Prosody stopped (SIGSTOP) for a while, as a
frozen VM or a hung server, then continued. The connection stays open and silent, so only the keepalive can find it:
the status must stop saying connected (so the views stop taking the rooms for watched), and once the server answers
again the time it did not must be recorded as a gap, from the last thing it said; traffic goes on after."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

import msgspec

from archive import events as ev
from archive.times import utcnow
from chat_archive.listener_status import listener_heartbeat
from chat_archive.config import Config
from chat_archive.xmpp_users import XmppUsers
from tests.ingest.helpers import Traffic, archived_stanza_ids, room_events, running_listener, wait_joined
from tests.services.prosody import PASSWORD, start_prosody, unique_room, wait_for

KEEPALIVE = {"keepalive_interval": 0.5, "keepalive_timeout": 2.0}
STOPPED_FOR = 8.0  # seconds: several keepalive rounds


@contextmanager
def stopped(process):
    """The server process stopped (no signal of its own can end it) until the block ends."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def test_a_server_that_stops_answering_is_found_and_its_silence_recorded_as_a_gap(tmp_path, event_store):
    server = start_prosody(tmp_path / "prosody")  # its own: the module's is shared by other tests
    status_file = tmp_path / "status.json"
    config = msgspec.structs.replace(Config(), xmpp=msgspec.structs.replace(Config().xmpp, jid="archiver@localhost",
                                                                            status_file=str(status_file)))
    try:
        with XmppUsers("127.0.0.1", server.port) as users:
            alice, bob = (users.connect(f"{name}@{server.domain}", PASSWORD) for name in ("alice", "bob"))
            room = unique_room(server, "stopped")
            alice.create_room(room, "alice")
            bob.join(room, "bob")
            with running_listener(server, event_store, status_file=status_file, include=(room,), **KEEPALIVE) as handle:
                listener = handle.listener
                wait_joined(handle, room, timeout=30)
                traffic = Traffic([alice, bob], [room], prefix="before").start()
                traffic.sent_at_least(3)
                traffic.pause()
                wait_for(lambda: set(traffic.sent[room]) <= set(archived_stanza_ids(event_store, room)), 20,
                         message="the messages before archived")
                stopped_at = utcnow()
                with stopped(server.process):
                    wait_for(lambda: not listener.status.connected, 15, message="the silence found")
                    time.sleep(1.5)  # a status written since
                    heartbeat = listener_heartbeat(config, event_store)
                    assert heartbeat is not None and heartbeat.until is None, heartbeat  # known until: no longer
                    assert heartbeat.away[room] <= stopped_at, heartbeat  # away since the last it heard
                    time.sleep(STOPPED_FOR)
                    continued_at = utcnow()
                wait_for(lambda: listener.status.connected and room in handle.joined_rooms(), 90,
                         message="connected again and back in the room")
                traffic.resume()
                traffic.sent_at_least(3, timeout=30)
                traffic.stop()
                wait_for(lambda: set(traffic.sent[room]) <= set(archived_stanza_ids(event_store, room)), 20,
                         message="the messages after archived")
                gaps = wait_for(lambda: [e for e in room_events(event_store, room) if isinstance(e, ev.ArchiveGap)],
                                20, message="the gap recorded")
    finally:
        server.stop()
    archived = archived_stanza_ids(event_store, room)
    assert len(archived) == len(set(archived)) and len(archived) >= 6
    [gap] = gaps
    assert gap.gap_start <= stopped_at and gap.gap_end >= continued_at, (gap, stopped_at, continued_at)
    assert gap.kind == ev.GapKind.PRESENCE  # the room's archive read over it: only presence is unknown
