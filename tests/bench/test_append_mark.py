"""A pass longer than the first size's mark reports its sinks' rates over its first and its last
``MARK`` events beside their whole-pass rates, so size is compared within one pass."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
import pytest

from bench import append, pgserver
from bench.corpus import CorpusSpec
from bench.measure import Results


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


def test_a_light_pass_feeds_the_postgresql_store_alone_and_the_sqlite_store_beside_its_raw_table(
        tmp_path, monkeypatch, postgres_url):
    """At 10M a baseline's COPY into the store's server bends the store's rate at the end of the pass: the
    light pass measures the PostgreSQL store by itself, so its size effect is the store's own."""
    fed = []

    def feed(spec, sinks):
        fed.append(sorted(s.name for s in sinks))
        for sink in sinks:
            sink.watch = SimpleNamespace(elapsed=1.0)
            sink.close()
        return 300, 200, {}, {}

    monkeypatch.setattr(append, "_feed", feed)
    results = Results(size="test")
    try:
        append.run_append(CorpusSpec(events=300, rooms=2, users=6), tmp_path, results, light=True)
    finally:  # the pass keeps its store's schema for the stages after it
        with psycopg.connect(pgserver.DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{append.pg_schema(tmp_path, "store")}" CASCADE')
    assert fed == [["raw", "store"], ["store"]]
    assert [n for n in results.notes if n.startswith("PostgreSQL server, append pass (store): ")]
    assert not [f for f in results.figures if "vs COPY" in f.name]
