"""The same stanza is never stored twice: slots (room, hour bucket, digest) and their edges.

``archive.idempotency`` states the assumption: a duplicate occurs within WINDOW of its original.
These tests place copies of one stanza just inside and just outside WINDOW, across bucket edges,
arriving by every path (live, history, MAM backfill, import) and from two writer processes.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from datetime import timedelta

import pytest

from archive import events as ev
from archive.application import open_event_store
from archive.idempotency import BUCKET, WINDOW, bucket_of, key_digest, windows_of
from archive.recorders import bucket_spans
from tests.factories import T0, message

ROOM = "lobby@conference.localhost"
EDGE = 1_000 * BUCKET  # an hour's edge, in epoch seconds
assert T0.timestamp() % BUCKET == 0  # the factories' T0 is an edge too: t = seconds from it


def copies(store) -> list[ev.Event]:
    return [r.event for r in store.read_log()]


def test_the_neighbouring_bucket_is_looked_up_within_the_window_of_an_edge():
    b = EDGE // BUCKET
    assert [bucket_of(w) for w in windows_of([math.floor(t) for t in (EDGE - 0.001, -0.001)])] == [(b - 1, b), (-1, 0)]
    times = [EDGE + d for d in (0, WINDOW - 0.001, WINDOW, BUCKET - WINDOW - 0.001, BUCKET - WINDOW)]
    assert [bucket_of(w) for w in windows_of(list(map(math.floor, times)))] == [(b, b - 1), (b, b - 1), (b, None), (b, None), (b, b + 1)]


def test_a_digest_is_eight_bytes_of_the_keys_sha256_as_a_signed_integer():
    # Keys of one, two and three SHA-256 blocks, non-ASCII too: the stored digests of existing stores.
    for key in ("sid:a@c:1", f"sid:{ROOM}:" + "x" * 40, "h:" + "é" * 70):
        want = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        assert key_digest(key) == want
    digests = {key_digest(f"sid:a@c:{i}") for i in range(10_000)}
    assert len(digests) == 10_000 and all(-(2**63) <= d < 2**63 for d in digests)


CAPTURES = [ev.Capture.HISTORY, ev.Capture.BACKFILL, ev.Capture.LIVE, ev.Capture.IMPORT]


@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize("first, second", [(-300, 299), (299, -300), (-WINDOW, 0), (0, -WINDOW), (-1, WINDOW - 1),
                                           (WINDOW - 1, -1)])
def test_a_copy_within_the_window_across_an_edge_is_not_stored_again(event_store, capture, first, second):
    event_store.append([message(first, stanza_id="s1")])
    assert event_store.append([message(second, stanza_id="s1", capture=capture)]) == []
    assert len(copies(event_store)) == 1


@pytest.mark.parametrize("first, second", [(-1, WINDOW), (-WINDOW - 1, WINDOW + 1), (0, 2 * BUCKET), (BUCKET, -1)])
def test_a_copy_just_outside_the_window_across_an_edge_is_stored_a_second_time(event_store, first, second):
    # What the stated assumption gives up: a later copy more than WINDOW away from its original, in
    # another hour, and itself not within WINDOW of the edge next to the original's hour.
    event_store.append([message(first, stanza_id="s1")])
    assert len(event_store.append([message(second, stanza_id="s1", capture=ev.Capture.BACKFILL)])) == 1
    assert len(copies(event_store)) == 2


def test_a_copy_outside_the_window_is_found_in_the_same_hour_the_same_batch_or_from_the_edge(event_store):
    event_store.append([message(WINDOW + 1, stanza_id="s1")])
    assert event_store.append([message(BUCKET - 1, stanza_id="s1")]) == []  # same hour, 49 minutes apart
    assert len(event_store.append([message(3 * BUCKET, stanza_id="s2"), message(0, stanza_id="s2")])) == 1
    event_store.append([message(-WINDOW - 1, stanza_id="s3")])
    assert event_store.append([message(0, stanza_id="s3")]) == []  # the later copy looks up the whole last hour
    assert sorted(e.stanza_id for e in copies(event_store)) == ["s1", "s2", "s3"]


def test_copies_in_the_middle_of_hours_and_other_rooms_are_told_apart(event_store):
    event_store.append([message(1800, stanza_id="s1"), message(1800, stanza_id="s1", room="other@c")])
    assert event_store.append([message(1800, stanza_id="s1"), message(1801, stanza_id="s2")])[0].event.stanza_id == "s2"
    assert len(copies(event_store)) == 3


def test_a_batch_mixing_known_copies_across_an_edge_and_new_events_stores_only_the_new(event_store):
    event_store.append([message(-t, stanza_id=f"s{t}") for t in range(1, 50)])
    again = [message(t, stanza_id=f"s{t}", capture=ev.Capture.HISTORY) for t in range(1, 50)]
    new = [message(t, stanza_id=f"n{t}") for t in range(1, 50)]
    recorded = event_store.append(again + new)
    assert [r.event for r in recorded] == new
    assert len(copies(event_store)) == 98


def test_a_rooms_consecutive_buckets_are_looked_up_as_one_range():
    buckets = {("a", 3), ("a", 1), ("a", 2), ("a", 5), ("b", 2), ("b", 1)}
    assert bucket_spans(buckets) == [("a", BUCKET, 4 * BUCKET), ("a", 5 * BUCKET, 6 * BUCKET), ("b", BUCKET, 3 * BUCKET)]


def test_copies_over_a_run_of_hours_and_an_hour_apart_in_two_rooms_are_each_stored_once(event_store):
    times = [h * BUCKET + m for h in (0, 1, 2, 5) for m in (60, BUCKET // 2, BUCKET - 60)]
    originals = [message(t, room=room, stanza_id=f"{room}{t}") for room in ("a@c", "b@c") for t in times]
    event_store.append(originals)
    again = [message(t + 1, room=room, stanza_id=f"{room}{t}", capture=ev.Capture.BACKFILL)
             for room in ("a@c", "b@c") for t in times]
    new = [message(t + 2, room="a@c", stanza_id=f"n{t}") for t in times]
    assert [r.event for r in event_store.append(again + new)] == new
    assert len(copies(event_store)) == len(originals) + len(new)


WRITER = """
import sys
from archive.application import open_event_store
from tests.factories import message
url, shift = sys.argv[1], float(sys.argv[2])
with open_event_store(url) as store:
    for i in range(60):
        store.append([message(shift + i, stanza_id=f"s{i}"), message(shift - i, stanza_id=f"t{i}")])
"""


def test_two_writer_processes_racing_with_copies_either_side_of_an_edge_store_each_once(store_url):
    open_event_store(store_url).close()  # tables made before the race
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, store_url, str(shift)]) for shift in (-90, 90)]
    assert [w.wait(120) for w in writers] == [0, 0]
    with open_event_store(store_url) as store:
        ids = [e.stanza_id for e in copies(store)]
    assert sorted(ids) == sorted({*ids}) and len(ids) == 120


def test_the_edge_copy_arriving_in_one_batch_with_its_original_is_stored_once(event_store):
    recorded = event_store.append([message(-10, stanza_id="s1"), message(10, stanza_id="s1",
                                                                         capture=ev.Capture.HISTORY)])
    assert len(recorded) == 1 and recorded[0].event.occurred_at == T0 - timedelta(seconds=10)
