"""The listener's liveness as `status` judges it, the write queue's back-pressure, the store lease,
and projections retrying store errors: pure or with an in-process store, no network."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from archive.errors import StoreError, StoreUnavailable
from archive.health import Health, PartHealth
from archive.lease import LeaseHeld, LeaseLost, StoreLease, holding
from archive.log_reads import LogPage
from archive.times import utcnow
from ingest.status import ListenerStatus, assess
from ingest.writer import BatchWriter
from projections.follower import LogFollower
from tests.factories import message
from tests.services.prosody import wait_for

NOW = utcnow()
HOST = "archive-host"


def listener(**fields) -> ListenerStatus:
    base = {"jid": "a@b", "pid": 4242, "host": HOST, "started_at": NOW - timedelta(hours=1), "updated_at": NOW,
            "connected": True, "stored_until": NOW}  # fmt: skip
    return ListenerStatus(**{**base, **fields})


def judge(status, alive=True):
    return assess(status, NOW, host=HOST, alive=lambda pid: alive)


def test_a_listener_killed_without_a_word_is_dead_not_running():
    assert (judge(listener()).state, judge(listener()).ok) == ("running", True)
    # kill -9: the file still says running; its process is gone, or it stopped being rewritten.
    gone = judge(listener(), alive=False)
    assert (gone.state, gone.ok) == ("dead", False) and "pid 4242" in gone.problems[0]
    stale = judge(listener(updated_at=NOW - timedelta(seconds=11)))
    assert stale.state == "dead" and "did not stop cleanly" in stale.problems[0]
    elsewhere = assess(listener(host="other-host"), NOW, host=HOST, alive=lambda pid: False)
    assert elsewhere.state == "running", "a process of another host cannot be looked up: the heartbeat decides"


def test_stopped_disconnected_and_behind_are_not_ok():
    assert judge(None).state == "not-started" and not judge(None).ok
    assert judge(listener(stopped=True)).state == "stopped"
    off = judge(listener(connected=False, last_error="connection refused"))
    assert off.state == "disconnected" and "connection refused" in off.problems[0]
    failing = PartHealth(ok=False, error="database is locked", since=NOW - timedelta(seconds=5), attempts=3)
    behind = judge(listener(parts={"listener writer": failing, "search indexer": PartHealth()}))
    assert (behind.state, behind.ok) == ("behind", False)
    assert behind.problems == [f"listener writer failing since {failing.since.isoformat().replace('+00:00', 'Z')} (3 attempts): database is locked"]
    assert judge(listener(input_paused=True, write_queue=60000)).state == "behind"
    assert judge(listener(stored_until=NOW - timedelta(seconds=31))).state == "behind"


class SlowStore:
    """Appends wait until ``open`` is set."""

    def __init__(self):
        self.open = threading.Event()
        self.appended = []

    def append(self, events):
        self.open.wait(10)
        self.appended += events
        return []


def test_a_full_write_queue_holds_input_back_and_says_so_then_lets_it_go(caplog):
    store, calls = SlowStore(), []
    writer = BatchWriter(store, on_full=calls.append, high_water=10, max_batch=4)
    writer.start()
    with caplog.at_level(logging.WARNING, logger="ingest.writer"):
        for i in range(15):
            writer.put([message(i)])
    assert calls == [True] and writer.full
    assert "write queue full: 11 events wait for the store" in caplog.text
    store.open.set()
    assert writer.wait_idle(10)
    wait_for(lambda: calls == [True, False], message="the queue to drain")
    writer.stop()
    assert len(store.appended) == 15, "nothing dropped"


class FlakyStore:
    def __init__(self, failures: int):
        self.failures, self.appended = failures, []

    def append(self, events):
        if self.failures:
            self.failures -= 1
            raise StoreError("database is locked")
        self.appended += events
        return []


def test_the_writer_reports_store_errors_while_it_retries_and_when_it_works_again():
    health = Health()
    writer = BatchWriter(FlakyStore(2), on_health=health.reporter("listener writer"))
    writer.start()
    writer.put([message(1)])
    assert writer.wait_idle(10)
    writer.stop()
    state = health.snapshot()["listener writer"]
    assert state.ok and state.recovered_at is not None


def test_a_projection_retries_store_errors_instead_of_stopping():
    class Log:
        def __init__(self):
            self.failures = 3

        def read_log_page(self, after, limit):
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("could not read the log: server closed the connection")
            return LogPage([], b"\x90")

    class Projection:
        name = "p"

        def position(self):
            return 0

        def apply(self, records):
            pass

        def commit(self, position):
            pass

        def discard(self):
            pass

    reports: list = []
    follower = LogFollower(Log(), Projection(), commit_interval=0.01, on_error=reports.append)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,))
    thread.start()
    wait_for(lambda: len(reports) >= 3, message="the errors reported")
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert all("server closed the connection" in r for r in reports)


def test_one_listener_per_store_a_dead_holder_is_taken_over_a_lost_lease_is_noticed(event_store):
    first = StoreLease(event_store, "listener")
    first.acquire()
    second = StoreLease(event_store, "listener")
    with pytest.raises(LeaseHeld, match=first.holder):
        second.acquire()
    first.release()
    # A holder of this host whose process is gone (kill -9) is taken over at once.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    crashed = StoreLease(event_store, "listener")
    crashed.holder = f"{socket.gethostname()} pid {dead.stdout.strip()} crashed"
    crashed.acquire()
    second.acquire()
    with pytest.raises(LeaseLost, match=second.holder):
        crashed.renew()  # had it come back, it would learn it must stop
    second.release()
    expired = StoreLease(event_store, "listener", ttl=-1)  # written already expired
    expired.acquire()
    StoreLease(event_store, "listener").acquire()


def test_a_holder_named_by_this_process_id_but_not_this_lease_is_a_former_process_taken_over(event_store):
    """A container restarted under the same host name runs as the same process id (1): the lease its former
    process left names this id, which is alive (it is this process), so it refused itself until the lease
    expired, and restarted meanwhile."""
    former = StoreLease(event_store, "listener")
    former.holder = f"{socket.gethostname()} pid {os.getpid()} former"
    former._transaction(lambda cursor: former._write(cursor, time.time(), replacing=None))  # its row, left behind
    StoreLease(event_store, "listener").acquire()


def test_a_lease_taken_over_while_held_calls_on_lost_once(event_store):
    """This process paused past the ttl (or the store out of reach): another took the lease over, and the block
    holding it learns so at the next renewal, to stop at its next safe point rather than run beside the other."""
    lost = threading.Event()
    with holding(StoreLease(event_store, "views x", ttl=0.6), on_lost=lost.set) as held:
        other = StoreLease(event_store, "views x")
        other._transaction(lambda cursor: other._write(cursor, time.time(), replacing=held.holder))
        assert lost.wait(5), "on_lost was called"
    assert StoreLease(event_store, "views x")._transaction(other._current)[0] == other.holder, "the other keeps it"


def test_a_projection_stops_on_an_error_that_trying_again_cannot_mend():
    class Log:
        def read_log_page(self, after, limit):
            raise StoreError("search index has schema version 1, this program 2")

    class Projection:
        name = "p"

        def position(self):
            return 0

    with pytest.raises(StoreError, match="schema version"):
        LogFollower(Log(), Projection(), commit_interval=0.01).run(threading.Event())


def test_a_commit_whose_answer_was_lost_is_not_made_twice():
    """PostgreSQL cut after COMMIT: the view holds the changes, the follower heard an error."""
    from archive.codec import to_msgpack

    class Log:
        def read_log_page(self, after, limit):
            positions = range(after + 1, 4)
            return LogPage(positions, to_msgpack([message(p) for p in positions]))

    class Projection:
        name = "p"

        def __init__(self):
            self.committed, self.pending, self.lost_answer = 0, [], True
            self.rows: list[int] = []

        def position(self):
            return self.committed

        def apply(self, records):
            self.pending += [r.position for r in records]

        def commit(self, position):
            assert not set(self.pending) & set(self.rows), "committed twice"
            self.rows += self.pending
            self.committed = position
            if self.lost_answer:  # committed, but the answer never came: the pending state stays
                self.lost_answer = False
                raise StoreUnavailable("consuming input failed: server closed the connection")
            self.pending = []

        def discard(self):
            self.pending = []

    projection, stop, errors = Projection(), threading.Event(), []
    follower = LogFollower(Log(), projection, commit_interval=0.0)

    def run():
        try:
            follower.run(stop)
        except Exception as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: errors or (projection.committed == 3 and not projection.lost_answer), message="the view complete")
    stop.set()
    thread.join(10)
    assert errors == [] and projection.rows == [1, 2, 3]


def test_a_lost_views_lease_names_the_views_by_their_path_not_device_and_inode(event_store, tmp_path):
    """A projection runner that lost its lease said "the store's views sqlite 2049:1834 lease was taken over":
    the lease is keyed by the file's identity, but a reader knows the file by its path."""
    from chat_archive.views_lease import views_lease

    url = f"sqlite:///{tmp_path}/views.sqlite"
    crashed = views_lease(event_store, url)
    crashed.holder = f"{socket.gethostname()} pid {subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True).stdout.strip()} crashed"
    crashed.acquire()
    taker = views_lease(event_store, url)
    taker.acquire()
    with pytest.raises(LeaseLost) as lost:
        crashed.renew()
    message = str(lost.value)
    assert f"{tmp_path}/views.sqlite" in message and taker.holder in message
    assert str((tmp_path / "views.sqlite").stat().st_ino) not in message
    taker.release()
