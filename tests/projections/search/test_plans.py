"""A query's plan is kept across searches only where its text and scope alone made it: the same
query again (another page, another sort, another commit) is not planned again, and finds the same;
a query that uses the clock or the index's rooms is planned for every search."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive.errors import InvalidQueryError
from archive.events import Recorded
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection, plans
from projections.search.query import parse
from projections.search.translate import Translator
from tests.factories import T0, message

ALL = Scope(rooms=None)


@pytest.fixture
def indexed(index_root):
    location = IndexLocation(index_root / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=0)
    _feed(projection, 1, [message(i, "deploy the fox", stanza_id=f"s{i}") for i in range(12)])
    yield location, projection
    projection.close()


@pytest.fixture
def translations(monkeypatch):
    """How many queries were translated (planned)."""
    made = []

    class Counted(Translator):
        def translate(self, node):
            made.append(node)
            return super().translate(node)

    monkeypatch.setattr(plans, "Translator", Counted)
    monkeypatch.setattr(plans, "_plans", {})
    return made


def _feed(projection, first: int, events: list) -> None:
    projection.apply([Recorded(first + i, event) for i, event in enumerate(events)])
    projection.commit(first + len(events) - 1)


def _found(results) -> list:
    return [(hit.position, hit.snippet, hit.score) for hit in results.hits]


@pytest.mark.parametrize(("text", "fixed"), [
    ("deploy", True), ('"the fox"', True), ("depl*", True), ("deploy~", True), ("fox from:alice", True),
    ("fox room:lobby@conference.localhost", True), ("is:edited", True), ("-fox", True), ("", True),
    ("fox room:lobby", False), ("fox after:-7d", False), ("fox on:2024-05-01", False), ("fox OR before:2024-01-01", False),
    ("fox -(room:lobby)", False), ("NOT after:-1d", False),
])  # fmt: skip
def test_a_translation_is_fixed_unless_it_uses_the_clock_or_the_rooms(text, fixed):
    translator = Translator(compliance=False, rooms_with_local=lambda local: [])
    translator.translate(parse(text))
    assert translator.fixed is fixed


def test_the_same_query_again_is_not_planned_again(indexed, translations):
    location, projection = indexed
    index = SearchIndex(location, reload_interval=0)
    first = index.search("deploy", ALL, limit=5, facets=False)
    again = [
        index.search("deploy", ALL, limit=5, facets=False),
        index.search("deploy", ALL, limit=5, cursor=first.next_cursor, facets=False),
        index.search("deploy", ALL, sort="newest", limit=5, facets=False),
    ]
    assert len(translations) == 1
    assert _found(again[0]) == _found(first) and again[0].total == first.total == 12
    assert len(again[1].hits) == 5 and not {h.position for h in again[1].hits} & {h.position for h in first.hits}
    _feed(projection, 13, [message(20, "deploy again", stanza_id="late")])  # a commit: another searcher
    assert index.search("deploy", ALL, sort="newest", limit=5, facets=False).hits[0].body == "deploy again"
    assert len(translations) == 1


def test_each_scope_has_its_own_plan(indexed, translations):
    location, projection = indexed
    _feed(projection, 13, [message(30, "deploy elsewhere", room="dev@conference.localhost", stanza_id="dev")])
    index = SearchIndex(location, reload_interval=0)
    lobby = Scope(rooms=frozenset({"lobby@conference.localhost"}))
    dev = Scope(rooms=frozenset({"dev@conference.localhost"}))
    assert index.search("deploy", lobby, facets=False).total == 12
    assert [hit.body for hit in index.search("deploy", dev, facets=False).hits] == ["deploy elsewhere"]
    assert index.search("deploy", ALL, facets=False).total == 13
    assert len(translations) == 3


def test_a_room_named_by_its_local_part_is_looked_up_in_every_search(indexed, translations):
    location, projection = indexed
    index = SearchIndex(location, reload_interval=0)
    assert index.search("deploy room:dev", ALL, facets=False).total == 0
    _feed(projection, 13, [message(30, "deploy elsewhere", room="dev@conference.localhost", stanza_id="dev")])
    assert [hit.body for hit in index.search("deploy room:dev", ALL, facets=False).hits] == ["deploy elsewhere"]
    assert len(translations) == 2


def test_a_relative_time_counts_back_from_each_search(indexed, translations):
    location, _ = indexed
    index = SearchIndex(location, reload_interval=0)
    soon = T0 + timedelta(days=1)
    assert index.search("fox after:-2d", ALL, now=soon, facets=False).total == 12
    assert index.search("fox after:-2d", ALL, now=soon + timedelta(days=30), facets=False).total == 0
    assert len(translations) == 2


def test_a_kept_plan_refuses_nothing_it_did_not_refuse(indexed, translations):
    location, _ = indexed
    index = SearchIndex(location, reload_interval=0)
    compliance = Scope(rooms=None, compliance=True)
    assert index.search("fox is:retracted", compliance, facets=False).total == 0
    with pytest.raises(InvalidQueryError):
        index.search("fox is:retracted", ALL, facets=False)
    with pytest.raises(InvalidQueryError):
        index.search("fox (", ALL, facets=False)


def test_kept_plans_are_bounded(monkeypatch, translations):
    monkeypatch.setattr(plans, "PLANS_KEPT", 3)
    for i in range(7):
        plans.plan_for(f"word{i}", parse(f"word{i}"), ALL, lambda local: [])
    assert 0 < len(plans._plans) <= 3
    long = " ".join(["word"] * (plans.KEPT_CHARS // 5 + 1))
    plans._plans.clear()
    plans.plan_for(long, parse(long), ALL, lambda local: [])
    assert not plans._plans


def test_kept_plans_hold_a_bounded_number_of_rooms(monkeypatch, translations):
    """A plan holds its scope's rooms: 256 plans of a caller who sees 5,000 rooms held ~260 MB."""
    monkeypatch.setattr(plans, "ROOMS_KEPT", 100)
    plans._plans.clear()
    many = Scope(rooms=frozenset(f"room{i}@conference.localhost" for i in range(40)))
    for i in range(7):
        plans.plan_for(f"word{i}", parse(f"word{i}"), many, lambda local: [])
        assert 0 < sum(len(scope.rooms) for _, scope in plans._plans) <= 100
    too_many = Scope(rooms=frozenset(f"room{i}@conference.localhost" for i in range(101)))
    plans._plans.clear()
    plans.plan_for("word", parse("word"), too_many, lambda local: [])
    assert not plans._plans
