"""The audit trail on both stores: concurrent writers share commits, lose nothing, and the chain holds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from archive.application import StoreLocation, open_event_store
from archive.audit import read_audit, record_read
from archive import audit_tables
from archive.audit_tables import alone
from archive.codec import to_msgpack
from archive.errors import StoreError
from archive.events import AUDIT_STREAM
from archive.integrity import verify_integrity
from archive.group_commit import GroupCommit
from tests.services.postgres import POSTGRES_DSN


def test_concurrent_reads_are_all_recorded_in_one_unbroken_chain(event_store):
    def reader(n):
        for i in range(40):
            record_read(event_store, via="api", endpoint="search", token_id=f"t{n}", query=f"q{i}", results=i)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = list(read_audit(event_store))
    assert len(records) == 240 and [r.position for r in records] == list(range(1, 241))
    assert len(list(read_audit(event_store, who="t3"))) == 40
    result = verify_integrity(event_store, AUDIT_STREAM)
    assert result.ok and result.events == 240


def test_group_commit_batches_waiting_writers_and_hands_each_its_error():
    batches = []

    def slow_commit(items):
        time.sleep(0.02)
        if "bad" in items:
            raise StoreError("disk full")
        batches.append(list(items))

    group = GroupCommit(slow_commit)
    errors = []

    def write(item):
        try:
            group.write(item)
        except StoreError as e:
            errors.append((item, str(e)))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(x for b in batches for x in b) == list(range(20)) and len(batches) < 20
    group.write(99)  # alone: its own commit
    assert batches[-1] == [99]
    with pytest.raises(StoreError, match="disk full"):
        group.write("bad")


def test_a_batch_that_fails_midway_leaves_nothing_and_the_next_one_commits(event_store):
    # A good record, then one without state: SQLite's chaining (in Python) fails on it after the head's
    # read, PostgreSQL's (in the server) after the first row is inserted.
    with pytest.raises((TypeError, IntegrityError)):
        event_store._recorder.insert_audit([(b"\x80", 0.0), (None, 0.0)])
    record_read(event_store, via="api", endpoint="search")
    assert [r.position for r in read_audit(event_store)] == [1]
    assert verify_integrity(event_store, AUDIT_STREAM).ok


def test_a_writer_whose_last_record_is_no_longer_the_head_chains_on_the_newer_one(store_url):
    # Two stores on one database, as two worker processes: each appends after the other's records.
    with open_event_store(store_url) as first:
        state = to_msgpack(record_read(first, via="api", endpoint="search"))
    with open_event_store(store_url) as a, open_event_store(store_url) as b:
        for i in range(3):
            a._recorder.insert_audit([(state, float(i))])  # never fails on the other's number
            b._recorder.insert_audit([(state, float(i)), (state, float(i))])
        assert [r.position for r in read_audit(a)] == list(range(1, 11))
        assert verify_integrity(a, AUDIT_STREAM).ok


def test_a_postgresql_store_of_an_earlier_version_gets_the_server_side_append_when_opened(postgres_url):
    with open_event_store(postgres_url) as store:
        record_read(store, via="api", endpoint="search")
    schema = StoreLocation.parse(postgres_url).schema
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:  # as a store of an earlier version
        conn.execute(f'DROP FUNCTION "{schema}".archive_audit_chain')
        conn.execute(f'DROP TABLE "{schema}".archive_schema')  # an earlier version's store has no record of set-up
        conn.execute(f'CREATE FUNCTION "{schema}".archive_audit_append(bytea[], double precision[], bytea) '
                     "RETURNS void LANGUAGE sql AS 'SELECT 1'")
    with open_event_store(postgres_url) as store:
        for _ in range(3):  # the first through the server-side append, the others chained here
            record_read(store, via="api", endpoint="search")
        assert [r.position for r in read_audit(store)] == [1, 2, 3, 4]
        assert verify_integrity(store, AUDIT_STREAM).ok
    with psycopg.connect(POSTGRES_DSN) as conn:
        assert conn.execute("SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                            "WHERE nspname = %s AND proname LIKE 'archive_audit%%'", (schema,)).fetchall() == [
            ("archive_audit_chain",)]


def test_a_postgresql_writer_chains_in_python_only_while_no_other_wrote_between_its_batches():
    assert alone(None, 7)  # its first batch
    assert alone((7, b"l"), 7)
    assert not alone((7, b"l"), 9)


def test_a_postgresql_audit_append_whose_connection_broke_is_written_on_a_new_one(postgres_url):
    # The append takes its connection from the pool itself and says the driver's errors as the library's: a broken
    # connection is the library's OperationalError, which the store tries again, on a new connection.
    with open_event_store(postgres_url) as store:
        record_read(store, via="api", endpoint="search")
        pool = store._recorder.datastore.pool
        idle = [pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
        for conn in idle:
            pool.putconn(conn)
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:  # the server ends every one of them
            for broken in idle:
                assert conn.execute("SELECT pg_terminate_backend(%s)", (broken.info.backend_pid,)).fetchone()[0]
        record_read(store, via="api", endpoint="search")
        assert pool.get_stats().get("returns_bad", 0) >= 1  # the append hit a broken one and gave it back
        assert [r.position for r in read_audit(store)] == [1, 2]
        assert verify_integrity(store, AUDIT_STREAM).ok


def test_a_postgresql_audit_append_prepares_its_insert_again_where_the_driver_deallocated_it(postgres_url):
    # The append prepares its INSERT once a connection through libpq; the driver deallocates every prepared
    # statement of a connection after a ROLLBACK (DROP, ALTER, DISCARD ALL) on it.
    with open_event_store(postgres_url) as store:
        pool = store._recorder.datastore.pool
        for _ in range(4):  # the first is the server-side append's; the next prepare the INSERT on the connections
            record_read(store, via="api", endpoint="search")
        idle = len(_on_each_idle_connection(pool, "DEALLOCATE ALL"))
        for _ in range(idle):  # the pool hands its connections out in turn: each one's INSERT
            record_read(store, via="api", endpoint="search")
        assert [r.position for r in read_audit(store)] == list(range(1, 5 + idle))
        assert verify_integrity(store, AUDIT_STREAM).ok


def test_a_postgresql_audit_append_prepares_its_insert_anew_where_the_connection_holds_one_of_its_name(postgres_url):
    # An append interrupted (Ctrl-C) after the server prepared its INSERT and before the store noted it leaves
    # a statement of that name on the connection: the next append there must not fail for ever with 42P05.
    with open_event_store(postgres_url) as store:
        pool = store._recorder.datastore.pool
        record_read(store, via="api", endpoint="search")  # the server-side append: the head is known after it
        idle = len(_on_each_idle_connection(pool, "PREPARE archive_audit_insert_1 AS SELECT 1"))  # not even the INSERT
        for _ in range(idle + 1):
            record_read(store, via="api", endpoint="search")
        assert [r.position for r in read_audit(store)] == list(range(1, 3 + idle))
        assert verify_integrity(store, AUDIT_STREAM).ok


def test_a_postgresql_audit_append_keeps_few_statements_prepared_on_a_connection(postgres_url):
    # A statement prepared for each batch size the group commit makes (up to 200 records) would stay on the
    # connection, each holding its parse tree in the server for the connection's life.
    with open_event_store(postgres_url) as store:
        record_read(store, via="api", endpoint="search")  # the server-side append: the head is known after it
        record = next(iter(read_audit(store))).event
        for n in range(1, 41):
            store._insert_audit([record] * n)
        prepared = _on_each_idle_connection(
            store._recorder.datastore.pool,
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'archive_audit_insert_%'")
        assert 0 < max(row["count"] for row in prepared) <= audit_tables.MOST_PREPARED
        assert [r.position for r in read_audit(store)] == list(range(1, 2 + 40 * 41 // 2))
        assert verify_integrity(store, AUDIT_STREAM).ok


def _on_each_idle_connection(pool, statement: str) -> list:
    """``statement`` run on each connection the pool holds idle: its first row on each (None for no rows)."""
    idle = [pool.getconn() for _ in range(pool.get_stats()["pool_available"])]
    rows = []
    for conn in idle:
        cursor = conn.execute(statement)
        rows.append(cursor.fetchone() if cursor.description else None)
        pool.putconn(conn)
    return rows


def test_a_postgresql_audit_append_gives_its_connection_back_to_the_pool(postgres_url):
    with open_event_store(postgres_url) as store:
        pool = store._recorder.datastore.pool
        for _ in range(pool.max_size + 2):  # more than the pool holds: each batch's connection is given back
            record_read(store, via="api", endpoint="search")
        assert pool.get_stats()["pool_available"] == pool.get_stats()["pool_size"]
        assert store.audit_last() == pool.max_size + 2


def test_group_commit_takes_at_most_max_batch_items_a_commit():
    batches, started, release = [], threading.Event(), threading.Event()

    def commit(items):
        if not batches:  # the first holds the others back until all are queued
            started.set()
            release.wait(5)
        batches.append(list(items))

    group = GroupCommit(commit, max_batch=3)
    first = threading.Thread(target=group.write, args=(0,))
    first.start()
    assert started.wait(60)
    threads = [threading.Thread(target=group.write, args=(i,)) for i in range(1, 31)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 30 and time.monotonic() < deadline:  # all queued behind the first commit
        time.sleep(0.01)
    release.set()
    for t in [first, *threads]:
        t.join()
    # Oldest first, each writer's own included (a leader whose item is not among the oldest leads again).
    assert batches[0] == [0] and [len(b) for b in batches[1:]] == [3] * 10
    assert sorted(x for b in batches for x in b) == list(range(31))


# One writer process of a two-worker API: request threads recording reads, every failed request kept.
WRITER = """
import json, sys, threading
from archive.application import StoreLocation, open_event_store
from archive.audit import record_read

url, per_thread = sys.argv[1], int(sys.argv[2])
with open_event_store(url) as store:
    failed_reads = []

    def requests(n):
        for i in range(per_thread):
            try:
                record_read(store, via="api", endpoint="search", token_id=f"{sys.argv[3]}-{n}", query=f"q{i}")
            except Exception as e:
                failed_reads.append(repr(e))

    threads = [threading.Thread(target=requests, args=(n,)) for n in range(4)]
    print("ready", flush=True)
    sys.stdin.readline()  # both processes ready: go
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print(json.dumps({"failed_reads": failed_reads}))
"""


def test_two_processes_recording_reads_at_once_lose_none_and_keep_one_chain(store_url):
    open_event_store(store_url).close()  # the tables made before the writers race
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, store_url, "300", name], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]  # fmt: skip
    assert [writer.stdout.readline() for writer in writers] == ["ready\n", "ready\n"]
    for writer in writers:  # at once, so that their commits interleave
        writer.stdin.write("go\n")
        writer.stdin.flush()
    results = [json.loads(writer.communicate(timeout=120)[0]) for writer in writers]
    assert [r["failed_reads"] for r in results] == [[], []]
    with open_event_store(store_url) as store:
        assert len(list(read_audit(store))) == 2 * 4 * 300
        assert verify_integrity(store, AUDIT_STREAM).ok


def test_a_commit_interrupted_by_a_base_exception_still_wakes_its_batch_and_passes_the_lead():
    # A thread interrupted inside the commit (SystemExit, KeyboardInterrupt) must not leave the callers
    # queued behind it asleep for ever, nor the group with a leader that never comes back.
    class Interrupted(BaseException):
        pass

    batches, started, release = [], threading.Event(), threading.Event()

    def commit(items):
        if not batches:
            batches.append(None)
            started.set()
            release.wait(5)
            raise Interrupted
        batches.append(list(items))

    group = GroupCommit(commit)
    outcomes = []

    def write(item):
        try:
            group.write(item)
            outcomes.append((item, "ok"))
        except Interrupted:
            outcomes.append((item, "interrupted"))

    first = threading.Thread(target=write, args=(0,))
    first.start()
    assert started.wait(60)
    others = [threading.Thread(target=write, args=(i,)) for i in range(1, 4)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert not any(t.is_alive() for t in [first, *others])
    assert sorted(outcomes) == [(0, "interrupted"), (1, "ok"), (2, "ok"), (3, "ok")]
    group.write(4)
    assert batches[-1] == [4]


def test_a_caller_interrupted_while_queued_leaves_the_queue_and_the_group_goes_on():
    # Ctrl-C in a thread queued behind a commit: without it leaving the queue, the lead would be handed to a
    # caller that no longer waits, and every later writer would sleep for ever.
    batches, started, release = [], threading.Event(), threading.Event()

    def commit(items):
        if not batches:
            started.set()
            release.wait(60)
        batches.append(list(items))

    group = GroupCommit(commit)
    first = threading.Thread(target=group.write, args=(0,), daemon=True)
    first.start()
    assert started.wait(60)  # else this caller would lead, not queue

    def interrupt_when_queued():
        deadline = time.monotonic() + 60
        while not group._queue:  # anywhere from queueing on, the caller leaves the queue
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)
        # A real signal, as Ctrl-C sends: it wakes the wait (interrupt_main's flag waited for the release).
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt_when_queued, daemon=True).start()
    # Python leaves SIGINT ignored when it started so (a suite run in the background by a shell without job control).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            group.write("interrupted")
    finally:
        signal.signal(signal.SIGINT, previous)
    release.set()
    first.join(10)
    later = threading.Thread(target=group.write, args=(2,), daemon=True)
    later.start()
    later.join(10)
    assert not later.is_alive() and batches == [[0], [2]]


def test_a_leader_interrupted_before_its_commit_passes_the_lead_on():
    # Ctrl-C between taking the lead and leading: without it leaving, the group stayed busy with no leader.
    batches = []
    group = GroupCommit(lambda items: batches.append(list(items)))
    lead = group._lead

    def interrupted():
        group._lead = lead
        raise KeyboardInterrupt

    group._lead = interrupted
    with pytest.raises(KeyboardInterrupt):
        group.write("interrupted")
    later = threading.Thread(target=group.write, args=(1,), daemon=True)
    later.start()
    later.join(10)
    assert not later.is_alive() and batches == [[1]]
