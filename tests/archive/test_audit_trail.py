"""The audit trail on both stores: concurrent writers share commits, lose nothing, and the chain holds."""

from __future__ import annotations

import threading
import time

import pytest

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
