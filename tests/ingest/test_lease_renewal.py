"""The listener's lease is renewed however busy its event loop's default executor is: at connect every room's join
reads the room from the store there, all at once (``Rooms.view``), for as long as a large archive takes. Its status,
the lease's note, is kept in the store as often as the lease is renewed, and at once when its rooms change."""

from __future__ import annotations

import threading
import time

import msgspec

from archive.lease import last_note
from ingest.status import LEASE as LISTENER_LEASE, ListenerStatus
from tests.ingest.helpers import running_listener, wait_for_event, wait_joined
from tests.services.prosody import unique_room, wait_for

LEASE = 1.2  # seconds: short, so that a renewal queued behind the reads comes too late within the test


def test_the_lease_is_renewed_while_the_rooms_reads_fill_the_loops_executor(prosody, people, event_store):
    """The renewal went through the loop's default executor (min(32, cpus + 4) threads), behind the joins' reads of
    every room: on a large archive it waited past the lease, which lapsed; every append stopped, and a standby
    (docs/DEPLOY.md) took over from a healthy listener."""
    alice = people["alice"]
    room = unique_room(prosody, "busy")
    alice.create_room(room, "alice")
    with running_listener(prosody, event_store, include=(room,), lease_seconds=LEASE) as handle:
        wait_joined(handle, room)
        listener, reads_done = handle.listener, threading.Event()
        loop = listener._loop

        def read_a_large_room() -> None:  # as long as reading a room of a large archive takes
            reads_done.wait(30)

        def join_many_rooms() -> None:
            for _ in range(64):
                loop.run_in_executor(None, read_a_large_room)

        try:
            loop.call_soon_threadsafe(join_many_rooms)
            alice.say(room, "while the rooms are read")
            deadline = time.monotonic() + 3 * LEASE
            while time.monotonic() < deadline:
                assert not listener.lease.lapsed(), "the lease lapsed while the listener ran"
                time.sleep(0.05)
            wait_for_event(event_store, room, ("message", "alice", "while the rooms are read"), timeout=2)
        finally:
            reads_done.set()


def test_the_status_is_kept_in_the_store_every_sixth_of_the_lease_and_at_once_when_the_rooms_change(
        prosody, people, event_store):
    """The whole status was written into the store every second: most of what an idle listener costs the store. A
    heartbeat every sixth of the lease (as the renewals) is enough; a room joined or lost is told at once."""
    alice = people["alice"]
    room = unique_room(prosody, "kept")
    alice.create_room(room, "alice")
    with running_listener(prosody, event_store, include=(room,), lease_seconds=18.0) as handle:
        wait_for(lambda: (status := kept(event_store)) and room in status.rooms_joined, 10,
                 message="the room joined, in the store at once")
        beats = set()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            beats.add(kept(event_store).updated_at)
            time.sleep(0.1)
        assert len(beats) <= 2, f"{len(beats)} writes in 2.5 s: every 3 s is enough"
        assert handle.listener.status.updated_at > max(beats), "its status file is written every second still"


def kept(store) -> ListenerStatus | None:
    """The status the listener keeps in the store."""
    note = last_note(store, LISTENER_LEASE)
    return note and msgspec.json.decode(note[1], type=ListenerStatus)
