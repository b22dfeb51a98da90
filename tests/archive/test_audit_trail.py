"""The audit trail on both stores: concurrent writers share commits, lose nothing, and the chain holds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from archive.application import open_event_store
from archive.audit import read_audit, record_read
from archive.errors import StoreError
from archive.events import AUDIT_STREAM
from archive.integrity import verify_integrity
from archive.group_commit import GroupCommit


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
    with pytest.raises(TypeError):  # fails after the lock is taken and the head read, before the rows go
        event_store._recorder.insert_audit([(None, 0.0)])
    record_read(event_store, via="api", endpoint="search")
    assert [r.position for r in read_audit(event_store)] == [1]
    assert verify_integrity(event_store, AUDIT_STREAM).ok


# One writer process of a two-worker API: request threads recording reads, every failed request kept.
WRITER = """
import json, sys, threading
from archive.application import open_event_store
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
