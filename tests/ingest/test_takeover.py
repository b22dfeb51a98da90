"""A listener taking over from one on another host: two `chat-archive listen` processes, each with a status file of its
own (as on two hosts), on one PostgreSQL store and the real Prosody, under live traffic. The first pauses (SIGSTOP)
past its lease, the second takes over; the first, resumed, must store nothing of what it saw meanwhile."""

from __future__ import annotations

import signal
import socket
import time
from datetime import timedelta

import psycopg

from archive.application import open_event_store
from archive.lease import StoreLease
from archive.times import utcnow
from ingest.status import ListenerStatus, write_status
from tests.ingest.helpers import Traffic, room_events, wait_for_event, write_config
from tests.ingest.test_restart_gaps import gaps_of_a_room_archived_once, wait_all_archived
from tests.services.postgres import POSTGRES_DSN
from tests.services.prosody import LISTENER, unique_room, wait_for

LEASE = 3.0  # seconds: the listeners' lease (`[xmpp] lease_seconds`), short for the test


def a_listener_that_ran_here_weeks_ago(status_file, room: str, jid: str) -> None:
    """The status file a listener of this host left weeks ago, stopped while away from ``room``: since then another
    host's listener has archived it."""
    weeks_ago = utcnow() - timedelta(weeks=3)
    write_status(status_file, ListenerStatus(
        jid=jid, pid=1, host=socket.gethostname(), holder=f"{socket.gethostname()} pid 1 0ldrun0", started_at=weeks_ago,
        updated_at=weeks_ago, stopped=True, rooms_away={room: weeks_ago},
    ))  # fmt: skip


def test_a_listener_paused_past_its_lease_is_taken_over_on_another_host_and_stores_nothing_after(
        prosody, people, tmp_path, start_listen, postgres_url):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    room = unique_room(prosody, "takeover")
    alice.create_room(room, "alice")
    carol.join(room, "carol")
    lease = f"lease_seconds = {LEASE}"
    config_a, status_a, _ = write_config(tmp_path / "host-a", prosody, room, store_url=postgres_url, xmpp=lease)
    config_b, status_b, _ = write_config(tmp_path / "host-b", prosody, room, store_url=postgres_url, xmpp=lease)
    a_listener_that_ran_here_weeks_ago(status_b, room, f"{LISTENER}@{prosody.domain}")
    traffic = Traffic([alice, carol], [room], prefix="live")
    with open_event_store(postgres_url) as store:
        try:
            started = utcnow()
            first = start_listen(config_a, status_a, room)
            traffic.start().sent_at_least(5)
            # Paused between appends: one paused inside its transaction would hold the store's writers until resumed.
            traffic.pause()
            wait_all_archived(store, room, traffic.sent[room])
            first.send_signal(signal.SIGSTOP)
            paused = utcnow()
            traffic.resume()
            time.sleep(LEASE + 1)  # its lease expires (by the database's clock)
            second = start_listen(config_b, status_b, room)  # takes over; its host's old file is no part of it
            bob.join(room, "bob")  # seen by both: by the first only once it runs again
            bob.set_presence(room, "away", "seen twice?")
            wait_for_event(store, room, ("presence", "bob", "away", "seen twice?"))
            first.send_signal(signal.SIGCONT)
            assert first.wait(30) == 1, "the first stops: its lease was taken over"
            log = config_a.with_suffix(".log").read_text()
            assert "taken over" in log, log
            traffic.sent_at_least(5)
            traffic.stop()
            wait_all_archived(store, room, traffic.sent[room])
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0
        finally:
            traffic.stop()
        gaps = gaps_of_a_room_archived_once(store, room)
        events = room_events(store, room)
    assert [(type(e).__name__, e.nick) for e in events if getattr(e, "nick", None) == "bob"] == [
        ("OccupantJoined", "bob"), ("PresenceChanged", "bob")], "bob's presence stored once, by the second listener"
    assert gaps, "the time the first was paused is a gap"
    assert all(started <= gap.gap_start <= paused for gap in gaps), [(g.gap_start, g.gap_end) for g in gaps]


def pausing_the_next_append(url: str, room: str, seconds: float) -> None:
    """The next append of one of ``room``'s events sleeps ``seconds`` in its transaction (a trigger, once: a sequence
    does not roll back), long enough to pause its process there."""
    schema = url.split("schema=")[1]
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SEQUENCE "{schema}".pause_once')
        conn.execute(f'CREATE FUNCTION "{schema}".pause() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN '
                     f"IF nextval('\"{schema}\".pause_once') = 1 THEN PERFORM pg_sleep({seconds}); END IF; "
                     "RETURN NEW; END $$")
        conn.execute(f'CREATE TRIGGER pause BEFORE INSERT ON "{schema}".archive_store_events FOR EACH ROW '
                     f"WHEN (NEW.originator_id = '{room}') EXECUTE FUNCTION \"{schema}\".pause()")


def backends_of(url: str, condition: str) -> bool:
    """Whether a session of the store's schema is in the state ``condition`` (SQL on pg_stat_activity)."""
    schema = url.split("schema=")[1]
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        return bool(conn.execute(f"SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND {condition}",
                                 (f'%"{schema}"%',)).fetchall())


def test_a_listener_paused_inside_an_append_commits_nothing_once_another_took_over(
        prosody, people, tmp_path, start_listen, postgres_url):
    """The listener is paused (SIGSTOP) in the middle of an append, after its writer checked the lease, and another
    listener takes the lease over meanwhile (one already running, its store open: a new one could not open it while
    the append's transaction holds the log's writer lock). Resumed, the first committed that append: bob's arrival,
    which the other records as it finds him, twice."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "frozen")
    alice.create_room(room, "alice")
    lease = f"lease_seconds = {LEASE}"
    config, status_file, _ = write_config(tmp_path, prosody, room, store_url=postgres_url, xmpp=lease)
    with open_event_store(postgres_url) as store:
        first = start_listen(config, status_file, room)
        pausing_the_next_append(postgres_url, room, 2.0)
        bob.join(room, "bob")
        wait_for(lambda: backends_of(postgres_url, "wait_event = 'PgSleep'"), message="the append in its sleep")
        first.send_signal(signal.SIGSTOP)
        time.sleep(LEASE + 0.5)
        other = StoreLease(store, "listener")
        other.acquire()  # the lease expired, by the database's clock: the other listener takes over
        first.send_signal(signal.SIGCONT)
        assert first.wait(30) == 1, "the first stops: its lease was taken over"
        assert "taken over" in config.with_suffix(".log").read_text()
        events = room_events(store, room)
        other.release()
    assert [type(e).__name__ for e in events if getattr(e, "nick", None) == "bob"] == [], \
        "nothing the first saw is stored after the other took over"
