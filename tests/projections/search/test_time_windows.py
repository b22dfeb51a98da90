"""Time sorts searched in windows of time buckets page exactly as the plain full sort.

The corpus has what breaks a window that trusts the order of writing: backfills and
imports written late with old times, runs of equal seconds (also across a page end),
bucket edges, retractions (compliance scope finds them), several rooms; every page of
a cursor walk, newest and oldest first, and the totals, are compared with the same
search ordered whole.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from archive import events as ev
from archive.events import Capture, Recorded
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection, timepage
from projections.search.schema import SPAN_SHIFT
from tests.factories import T0, message

ROOMS = ["lobby@conference.localhost", "dev@conference.localhost", "ops@conference.localhost"]
BUCKET = timedelta(microseconds=2**SPAN_SHIFT)  # the finest bucket


def _corpus(seed: int) -> list[ev.Event]:
    rng = random.Random(seed)
    events, t = [], T0
    for i in range(700):
        t += rng.choice([timedelta(0), timedelta(seconds=1), timedelta(minutes=7), BUCKET, 3 * BUCKET, 40 * BUCKET])
        when, capture = t, Capture.LIVE
        if rng.random() < 0.2:  # written now, dated long before (MAM backfill, an import)
            when = T0 + (t - T0) * rng.random()
            capture = rng.choice([Capture.BACKFILL, Capture.IMPORT])
        body = " ".join(rng.choices(["deploy", "fox", "lazy", "cat"], k=rng.randint(1, 3)))
        events.append(message(0, body, nick=rng.choice(["alice", "bob"]), stanza_id=f"s{i}", room=rng.choice(ROOMS),
                              occurred_at=when.replace(microsecond=0), capture=capture))
        if rng.random() < 0.05:
            events.append(ev.MessageRetracted(room=events[-1].room, occurred_at=t, recorded_at=t, target_id=f"s{i}"))
    return events


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    records = [Recorded(i + 1, event) for i, event in enumerate(_corpus(7))]
    location = IndexLocation(tmp_path_factory.mktemp("windows") / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=50, window=100)
    for start in range(0, len(records), 150):  # several segments, corrections of written lines
        batch = records[start : start + 150]
        projection.apply(batch)
        projection.commit(batch[-1].position)
    projection.close()
    return SearchIndex(location, reload_interval=0)


def _walk(index, text, scope, sort, limit) -> tuple[list[list[int]], list[int]]:
    pages, totals, cursor = [], [], None
    while True:
        found = index.search(text, scope, sort=sort, limit=limit, cursor=cursor, facets=False, exact_total=True)
        assert found.total_relation == "eq"
        pages.append([hit.position for hit in found.hits])
        totals.append(found.total)
        cursor = found.next_cursor
        if cursor is None:
            return pages, totals


def scope_id(scope):
    """A test id the same in every process: a frozenset's order follows the process's string hashes, and
    pytest-xdist's workers must collect the same ids."""
    rooms = ",".join(sorted(scope.rooms)) if scope.rooms is not None else "all"
    return f"rooms={rooms}-compliance={scope.compliance}-jids={scope.jids}"


def _windows_off(monkeypatch):
    """The plain full sort: no window is ever searched."""
    monkeypatch.setattr(timepage, "_windowed", lambda searcher, base, query, limit, newest, anchor, total, exact, ordered: (query, None, total, None))


@pytest.mark.parametrize("limit", [1, 3, 20])
@pytest.mark.parametrize("text", ["deploy", "fox lazy", "-cat", ""])
@pytest.mark.parametrize(
    "scope", [Scope(rooms=None), Scope(rooms=None, compliance=True), Scope(rooms=frozenset(ROOMS[:2]))], ids=scope_id
)
def test_windowed_pages_are_the_full_sorts(index, monkeypatch, text, scope, limit):
    tunings = [(0, 0, 0), (0, timepage.WINDOW_PAGES, 0), (timepage.WINDOWED_FROM, timepage.WINDOW_PAGES, 0),
               (timepage.WINDOWED_FROM, timepage.WINDOW_PAGES, timepage.ORDERED_WHOLE)]
    for sort in ("newest", "oldest"):
        with monkeypatch.context() as plain_sort:
            _windows_off(plain_sort)
            plain = _walk(index, text, scope, sort, limit)
        for windowed_from, window_pages, ordered_whole in tunings:  # (0, 0, 0): every level tried, the finest first
            monkeypatch.setattr(timepage, "WINDOWED_FROM", windowed_from)
            monkeypatch.setattr(timepage, "WINDOW_PAGES", window_pages)
            monkeypatch.setattr(timepage, "ORDERED_WHOLE", ordered_whole)
            assert _walk(index, text, scope, sort, limit) == plain, (sort, windowed_from, window_pages, ordered_whole)
        positions = [p for page in plain[0] for p in page]
        assert len(positions) == len(set(positions)) == plain[1][0]


def test_the_plain_sort_is_by_time_then_position(index, monkeypatch):
    """The reference itself: backfilled messages in their time's place, equal seconds by position."""
    _windows_off(monkeypatch)
    found = index.search("", Scope(rooms=None, compliance=True), sort="oldest", limit=500, facets=False)
    order = [(hit.time, hit.position) for hit in found.hits]
    assert order == sorted(order) and len(order) == 500 < found.total
    assert any(later.position < earlier.position for earlier, later in zip(found.hits, found.hits[1:]))


def test_a_window_follows_the_index_as_it_grows(tmp_path):
    """The newest bucket is the searcher's own: one remembered from before a commit would hide what came after."""
    location = IndexLocation(tmp_path / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=0)
    index = SearchIndex(location, reload_interval=0)
    for first, t in ((1, T0), (20, T0 + 50 * BUCKET)):
        projection.apply([Recorded(first + i, message(0, "fox", stanza_id=f"s{first + i}", occurred_at=t)) for i in range(5)])
        projection.commit(first + 4)
        found = index.search("fox", Scope(rooms=None), sort="newest", limit=2, facets=False)
        assert [hit.position for hit in found.hits] == [first + 4, first + 3]
    projection.close()


@pytest.mark.parametrize("scope", [Scope(rooms=None), Scope(rooms=None, compliance=True), Scope(rooms=frozenset(ROOMS[:2]))], ids=scope_id)
def test_a_first_page_without_exact_total_may_give_a_labelled_lower_bound(index, monkeypatch, scope):
    """A first page found in a window may count only that window's matches: never more than the
    total, never fewer than the page and one more, labelled "gte"; the same hits; a cursor's page exact."""
    monkeypatch.setattr(timepage, "WINDOWED_FROM", 0)  # every window tried, the finest first
    monkeypatch.setattr(timepage, "WINDOW_PAGES", 0)
    monkeypatch.setattr(timepage, "ORDERED_WHOLE", 0)  # every word here has fewer documents
    relations = set()
    for text in ("deploy", "fox lazy", "-cat", ""):
        for sort in ("newest", "oldest"):
            fresh = SearchIndex(index.location, reload_interval=0)  # nothing counted yet
            first = fresh.search(text, scope, sort=sort, limit=3, facets=False)
            exact = SearchIndex(index.location, reload_interval=0).search(
                text, scope, sort=sort, limit=3, facets=False, exact_total=True
            )
            assert [h.position for h in first.hits] == [h.position for h in exact.hits]
            assert exact.total_relation == "eq"
            relations.add(first.total_relation)
            if first.total_relation == "gte":
                assert len(first.hits) < first.total <= exact.total
            else:
                assert first.total == exact.total
            later = fresh.search(text, scope, sort=sort, limit=3, cursor=first.next_cursor, facets=False)
            assert (later.total, later.total_relation) == (exact.total, "eq")
            # Facets count every match: a bound beside them would contradict them.
            faceted = SearchIndex(index.location, reload_interval=0).search(text, scope, sort=sort, limit=3)
            assert (faceted.total, faceted.total_relation) == (exact.total, "eq")
    assert relations == {"gte"}


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_a_run_of_equal_times_longer_than_one_fetch_is_fetched_whole(index, monkeypatch, sort):
    """A page's end inside a run of equal seconds longer than ``TIE_RUN``: the run is fetched again, whole."""
    scope = Scope(rooms=None, compliance=True)
    expected = _walk(index, "", scope, sort, 1)
    monkeypatch.setattr(timepage, "TIE_RUN", 1)
    assert _walk(index, "", scope, sort, 1) == expected


def test_a_first_page_of_few_matches_is_ordered_whole_without_a_window(index, monkeypatch):
    """A word every match holds, in fewer documents than ``ORDERED_WHOLE``: no window searched (its
    ordered search would mostly find too few), the page and the exact total from one ordered search."""
    def no_window(*args):
        raise AssertionError("a window was searched")

    with monkeypatch.context() as windowed:  # the same page as the windows find it
        windowed.setattr(timepage, "ORDERED_WHOLE", 0)
        expected = index.search("fox lazy", Scope(rooms=frozenset(ROOMS[:2])), sort="newest", limit=3, facets=False,
                                exact_total=True)
    monkeypatch.setattr(timepage, "_windowed", no_window)
    found = SearchIndex(index.location, reload_interval=0).search(
        "fox lazy", Scope(rooms=frozenset(ROOMS[:2])), sort="newest", limit=3, facets=False
    )
    assert [h.position for h in found.hits] == [h.position for h in expected.hits]
    assert (found.total, found.total_relation) == (expected.total, "eq")
    # Not where every match could be one without the word (an OR), nor in compliance scope (text also in history).
    for text, scope in (("fox OR lazy", Scope(rooms=None)), ("fox", Scope(rooms=None, compliance=True))):
        with pytest.raises(AssertionError, match="a window was searched"):
            SearchIndex(index.location, reload_interval=0).search(text, scope, sort="newest", limit=3, facets=False)


def _edge_corpus(seed: int) -> list[ev.Event]:
    """Messages crowded into the newest finest buckets (across a bucket edge): runs of equal seconds, messages
    written late with earlier times inside the window, corrections (a corrected message's document is written
    again, after later ones) and retractions."""
    rng = random.Random(seed)
    events, t, posted = [], T0 + 40 * BUCKET - timedelta(seconds=400), []
    for i in range(600):
        t += rng.choice([timedelta(0), timedelta(0), timedelta(seconds=1), timedelta(seconds=3)])
        when = t if rng.random() > 0.15 else t - timedelta(seconds=rng.randint(1, 900))
        body = " ".join(rng.choices(["deploy", "fox", "lazy", "cat"], k=rng.randint(1, 3)))
        nick = rng.choice(["alice", "bob"])
        events.append(message(0, body, nick=nick, stanza_id=f"s{i}", message_id=f"m{i}", room=rng.choice(ROOMS),
                              occurred_at=when.replace(microsecond=0)))
        posted.append(events[-1])
        if rng.random() < 0.05:
            old = rng.choice(posted)
            events.append(ev.MessageCorrected(room=old.room, occurred_at=t, recorded_at=t, nick=old.nick,
                                              replaces_id=old.message_id, body=rng.choice(["fox deploy", "cat"])))
        if rng.random() < 0.03:
            old = rng.choice(posted)
            events.append(ev.MessageRetracted(room=old.room, occurred_at=t, recorded_at=t, target_id=old.stanza_id))
    return events


def _edge_pages(index) -> list:
    found = []
    for text in ("deploy", "fox lazy", "cat", "lazy -fox"):
        for sort in ("newest", "oldest"):
            for limit in (1, 3, 20):
                index.forget_known_totals()
                result = index.search(text, Scope(rooms=None), sort=sort, limit=limit, facets=False)
                found.append((text, sort, limit, result.hits, result.total, result.total_relation, result.next_cursor))
    return found


def test_what_a_reader_learned_of_the_edge_serves_its_later_searchers_as_a_fresh_reader(tmp_path, monkeypatch):
    """The (ts, key) a reader's window orders read (``KnownTimes``) and the lines it kept, keyed by segment id,
    serve the searchers of its later commits (new documents in the window, documents written again, retracted,
    segments merged) and give every page a reader that learned nothing gives; after a rebuild too."""
    records = [Recorded(i + 1, event) for i, event in enumerate(_edge_corpus(13))]
    location = IndexLocation(tmp_path / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=10, window=100)
    monkeypatch.setattr(timepage, "ORDERED_WHOLE", 0)  # every word here has fewer documents
    monkeypatch.setattr(timepage, "ORDERED_WINDOW_HITS", 10_000)
    ordered = []
    first = timepage.WindowOrder.first
    monkeypatch.setattr(timepage.WindowOrder, "first", lambda *args: ordered.append(first(*args)) or ordered[-1])
    reads = []  # (documents read, documents in the window) of each window order made
    made = timepage.WindowOrder.__init__

    def window_order(order, searcher, terms, documents, segments, known):
        before = len(known.rows)
        made(order, searcher, terms, documents, segments, known)
        reads.append((len(known.rows) - before, documents))

    monkeypatch.setattr(timepage.WindowOrder, "__init__", window_order)
    learning = SearchIndex(location, reload_interval=0)
    for start in range(0, len(records), 40):  # 16 commits: tantivy merges segments among them
        batch = records[start : start + 40]
        projection.apply(batch)
        projection.commit(batch[-1].position)
        ordered.clear()
        pages = _edge_pages(learning)
        # Each order's first page on a searcher aside (a merge tantivy finishes meanwhile makes another searcher).
        assert len(ordered) >= len(pages) - 6
        with monkeypatch.context() as without:
            without.setattr(timepage, "_by_window_order", lambda *args: None)
            assert pages == _edge_pages(SearchIndex(location, reload_interval=0))
    # Later searchers read the documents added since, not their whole window again.
    assert sum(read < documents for read, documents in reads[2:]) >= len(reads[2:]) // 2
    fresh = projection.begin_rebuild()  # its documents sit at the addresses of others, in segments of other ids
    other = [Recorded(i + 1, event) for i, event in enumerate(_edge_corpus(14))]
    fresh.apply(other)
    fresh.commit(len(other))
    projection.finish_rebuild(fresh)
    with monkeypatch.context() as without:
        without.setattr(timepage, "_by_window_order", lambda *args: None)
        expected = _edge_pages(SearchIndex(location, reload_interval=0))
    assert _edge_pages(learning) == expected
    projection.close()


def test_the_edge_windows_order_is_the_ordered_searchs(tmp_path, monkeypatch):
    """A first page found in the edge's window ordered from its documents' (ts, key) read once (``WindowOrder``)
    is the page of the ordered search, hit for hit (equal seconds by position), with the same total."""
    records = [Recorded(i + 1, event) for i, event in enumerate(_edge_corpus(11))]
    location = IndexLocation(tmp_path / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=50, window=100)
    for start in range(0, len(records), 120):  # several segments, documents written again
        batch = records[start : start + 120]
        projection.apply(batch)
        projection.commit(batch[-1].position)
    projection.close()
    monkeypatch.setattr(timepage, "ORDERED_WHOLE", 0)  # every word here has fewer documents
    monkeypatch.setattr(timepage, "ORDERED_WINDOW_HITS", 10_000)
    ordered = []
    first = timepage.WindowOrder.first
    monkeypatch.setattr(timepage.WindowOrder, "first", lambda *args: ordered.append(first(*args)) or ordered[-1])

    def pages(index) -> list:
        found = []
        for text in ("deploy", "fox lazy", "cat", "lazy -fox"):
            for sort in ("newest", "oldest"):
                for limit in (1, 3, 20, 200):
                    for exact_total in (False, True):
                        index.forget_known_totals()
                        result = index.search(text, Scope(rooms=None), sort=sort, limit=limit, facets=False,
                                              exact_total=exact_total)
                        found.append((text, sort, limit, [(h.time, h.position) for h in result.hits], result.total,
                                      result.total_relation, result.next_cursor))
        return found

    with monkeypatch.context() as without:
        without.setattr(timepage, "_by_window_order", lambda *args: None)
        expected = pages(SearchIndex(location, reload_interval=0))
    assert not ordered
    assert pages(SearchIndex(location, reload_interval=0)) == expected
    # Every first page but each order's first on the searcher (the window's order is read at the second).
    assert len(ordered) == len(expected) - 2 and all(page is not None for page in ordered)
    for text, sort, _, hits, _, _, _ in expected:
        assert hits == sorted(hits, reverse=sort == "newest")
