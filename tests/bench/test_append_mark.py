"""The append pass's rate at the first size's mark: a longer pass reports its sinks' rates over its
first ``MARK`` events beside their whole-pass rates, so size is compared within one pass."""

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


def test_a_pass_past_the_mark_reports_each_sinks_rate_at_the_mark(small_batches):
    sink = Slowing()
    n, _, at_mark = append._feed(CorpusSpec(events=500, rooms=2, users=6), [sink])
    assert n == 500
    assert at_mark == {"store": 200 / (1 + 2)}  # two batches to the mark
    figure = append._size_effect("SQLite", n, {"store": n / sink.watch.elapsed}, at_mark)
    assert (figure.value, figure.baseline) == (500 / 15, 200 / 3)


def test_a_pass_that_ends_at_the_mark_reports_no_rate_at_it(small_batches):
    assert append._feed(CorpusSpec(events=200, rooms=2, users=6), [Slowing()])[2] == {}
