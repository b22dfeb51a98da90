"""A query's total is counted once per searcher: the pages after the first and the other sort
orders take it from the search that counted it, until a commit is reloaded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive.events import Recorded
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection
from tests.factories import T0, message


class _CountingSearches:
    """A searcher that counts the searches asked for a total."""

    def __init__(self, searcher):
        self._searcher = searcher
        self.counted = 0

    def search(self, query, *args, **kwargs):
        result = self._searcher.search(query, *args, **kwargs)
        self.counted += kwargs.get("count", True) and result.count is not None
        return result

    def __getattr__(self, name):
        return getattr(self._searcher, name)


def _feed(projection, first: int, n: int, body: str) -> None:
    projection.apply([Recorded(first + i, message(0, body, stanza_id=f"s{first + i}", occurred_at=T0 + timedelta(minutes=first + i)))
                      for i in range(n)])
    projection.commit(first + n - 1)


@pytest.fixture
def indexed(index_root):
    location = IndexLocation(index_root / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=0)
    _feed(projection, 1, 30, "deploy the fox")
    yield location, projection
    projection.close()


def _walk(index, scope, sort):
    pages, cursor = [], None
    while True:
        found = index.search("deploy", scope, sort=sort, limit=7, cursor=cursor, facets=False)
        pages.append(([hit.position for hit in found.hits], found.total))
        cursor = found.next_cursor
        if cursor is None:
            return pages


@pytest.mark.parametrize("scope", [Scope(rooms=None), Scope(rooms=None, compliance=True)], ids=str)
def test_a_total_once_counted_is_not_counted_again(indexed, monkeypatch, scope):
    location, _ = indexed
    index = SearchIndex(location, reload_interval=3600)
    expected = {sort: _walk(SearchIndex(location, reload_interval=3600), scope, sort) for sort in ("newest", "oldest")}
    searcher = _CountingSearches(index._refresh())
    monkeypatch.setattr(index, "_refresh", lambda: searcher)
    assert index.search("deploy", scope, facets=False).total == 30
    searcher.counted = 0
    for sort in ("newest", "oldest"):
        assert _walk(index, scope, sort) == expected[sort]
    assert searcher.counted == 0
    assert index.search("fox", scope, sort="newest", facets=False).total == 30 and searcher.counted > 0  # not known: counted


class _Searches:
    """A searcher that counts every search."""

    def __init__(self, searcher):
        self._searcher = searcher
        self.searches = 0

    def search(self, *args, **kwargs):
        self.searches += 1
        return self._searcher.search(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._searcher, name)


@pytest.mark.parametrize("sort", ["newest", "oldest"])
@pytest.mark.parametrize("scope", [Scope(rooms=None), Scope(rooms=None, compliance=True)], ids=str)
def test_a_time_sorted_page_of_no_match_searches_nothing(indexed, monkeypatch, sort, scope):
    """A query known to match nothing (its total counted on this searcher, or outside compliance scope a word every
    match holds in no document) gets its empty page without a search; one that matches is searched as before."""
    location, _ = indexed
    index = SearchIndex(location, reload_interval=3600)
    searcher = _Searches(index._refresh())
    monkeypatch.setattr(index, "_refresh", lambda: searcher)
    assert index.search("deploy -fox", scope, facets=False).total == 0  # relevance: counted
    searcher.searches = 0
    for text in ["deploy -fox"] + (["nowhere", "deploy nowhere"] if not scope.compliance else []):
        found = index.search(text, scope, sort=sort, limit=5, facets=False)
        assert (found.hits, found.total, found.total_relation, found.next_cursor) == ([], 0, "eq", None)
    assert searcher.searches == 0
    assert index.search("deploy", scope, sort=sort, limit=5, facets=False).total == 30 and searcher.searches > 0


def test_a_reloaded_commit_is_counted_again(indexed):
    location, projection = indexed
    index = SearchIndex(location, reload_interval=0)
    assert index.search("deploy", Scope(rooms=None), sort="newest", limit=5, facets=False).total == 30
    _feed(projection, 31, 4, "deploy again")
    for sort in ("newest", "relevance", "oldest"):
        assert index.search("deploy", Scope(rooms=None), sort=sort, limit=5, facets=False).total == 34


def test_forgotten_totals_are_counted_again(indexed, monkeypatch):
    location, _ = indexed
    index = SearchIndex(location, reload_interval=3600)
    searcher = _CountingSearches(index._refresh())
    monkeypatch.setattr(index, "_refresh", lambda: searcher)
    index.search("deploy", Scope(rooms=None), facets=False)
    index.forget_known_totals()
    searcher.counted = 0
    assert index.search("deploy", Scope(rooms=None), sort="newest", limit=5, facets=False).total == 30
    assert searcher.counted > 0


def test_a_lower_bound_is_not_remembered_as_the_total(indexed, monkeypatch):
    """A first page that only counted its window does not make later pages or sorts report its
    bound as exact; the exact count, once asked for, is remembered for all of them."""
    from projections.search import timepage

    monkeypatch.setattr(timepage, "WINDOWED_FROM", 0)
    monkeypatch.setattr(timepage, "WINDOW_PAGES", 0)
    monkeypatch.setattr(timepage, "ORDERED_WHOLE", 0)  # a word of this few documents is ordered whole
    location, projection = indexed
    projection.apply([Recorded(31 + i, message(0, "deploy long ago", stanza_id=f"old{i}", occurred_at=T0 - timedelta(days=30 * (i + 1))))
                      for i in range(10)])  # outside the newest windows
    projection.commit(40)
    index = SearchIndex(location, reload_interval=3600)
    for _ in range(2):
        bound = index.search("deploy", Scope(rooms=None), sort="newest", limit=2, facets=False)
        assert bound.total_relation == "gte" and 2 < bound.total <= 30
    assert index.search("deploy", Scope(rooms=None), facets=False).total == 40  # relevance: counted, exact
    for sort in ("newest", "oldest"):
        known = index.search("deploy", Scope(rooms=None), sort=sort, limit=2, facets=False)
        assert (known.total, known.total_relation) == (40, "eq")


@pytest.mark.parametrize("sort", ["relevance", "newest", "oldest"])
@pytest.mark.parametrize("scope", [Scope(rooms=None), Scope(rooms=None, compliance=True)], ids=str)
def test_facets_make_the_total_without_a_count(indexed, monkeypatch, sort, scope):
    """Facets visit every match: a page with them takes its total from their counts (it counted the
    matches a second time before)."""
    location, projection = indexed
    projection.apply([Recorded(31 + i, message(0, "deploy long ago", room=f"other{i % 3}@conference.localhost",
                                               stanza_id=f"old{i}", occurred_at=T0 - timedelta(days=i + 1)))
                      for i in range(12)])
    projection.commit(42)
    index = SearchIndex(location, reload_interval=3600)
    searcher = _CountingSearches(index._refresh())
    monkeypatch.setattr(index, "_refresh", lambda: searcher)
    found = index.search("deploy", scope, sort=sort, limit=5, facets=True, facet_size=2)
    assert (found.total, found.total_relation, searcher.counted) == (42, "eq", 0)
    assert sum(f.count for f in found.facets.rooms) < 42  # the total is not the shown facets' sum
