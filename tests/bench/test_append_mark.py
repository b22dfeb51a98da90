"""A pass longer than the first size's mark reports its sinks' rates over its first and its last
``MARK`` events beside their whole-pass rates, so size is compared within one pass."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import append
from bench.corpus import CorpusSpec


class Slowing:
    """A sink whose k-th batch takes k seconds on a pretend clock."""

    name = "store"

    def __init__(self):
        self.watch = SimpleNamespace(elapsed=0.0)
        self.batches = 0

    def write(self, events, payloads) -> None:
        self.batches += 1
        self.watch.elapsed += self.batches

    def close(self) -> None:
        pass


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(append, "BATCH", 100)
    monkeypatch.setattr(append, "MARK", 200)


def test_a_pass_past_the_mark_reports_each_sinks_rate_over_its_first_and_its_last_mark_of_events(small_batches):
    sink = Slowing()
    n, _, first, last = append._feed(CorpusSpec(events=500, rooms=2, users=6), [sink])
    assert n == 500
    assert first == {"store": 200 / (1 + 2)}  # two batches to the mark
    assert last == {"store": 200 / (4 + 5)}  # the last two batches
    at_end, whole = append._size_effect("SQLite", n, {"store": n / sink.watch.elapsed}, first, last)
    assert (at_end.value, at_end.baseline) == (200 / 9, 200 / 3) and at_end.aim
    assert (whole.value, whole.baseline) == (500 / 15, 200 / 3)


def test_a_pass_that_ends_at_the_mark_reports_no_rate_at_it(small_batches):
    assert append._feed(CorpusSpec(events=200, rooms=2, users=6), [Slowing()])[2:] == ({}, {})
