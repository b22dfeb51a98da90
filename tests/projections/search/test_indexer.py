"""The index kept up to date from a real event store: freshness, resume, rollback, rebuild."""

from __future__ import annotations

import random
import threading

import msgspec
import pytest

from archive import events as ev
from chat_archive.bootstrap import open_search_index, search_projection, search_status, start_search_indexer
from chat_archive.config import Config
from projections.rebuild import rebuild
from projections.search import IndexerThread, Scope, SearchIndexer
from projections.search import documents
from projections.search.indexer import CommitSchedule
from tests.factories import make, message

from .indexing import config_of, wait_for

EVERYTHING = Scope(rooms=None)
COMPLIANCE = Scope(rooms=None, compliance=True)


@pytest.fixture
def running(event_store, store_url, index_root):
    """An indexer thread on the store (commit interval 0.5 s) and a reader, as `up` and the API hold them."""
    config = config_of(store_url, index_root, commit_interval=0.5)
    stop = threading.Event()
    handle = start_search_indexer(config, event_store, stop)
    yield config, open_search_index(config)
    stop.set()
    handle.join(10)


SCHEDULE = CommitSchedule(interval=0.5, catch_up_interval=5.0, max_pending=1000)


def test_caught_up_a_commit_is_due_once_the_interval_has_passed_since_the_first_change_pending():
    assert not SCHEDULE.due(None, 100.0, 0, behind=False)  # nothing to publish
    assert not SCHEDULE.due(100.0, 100.0, 1, behind=False)
    assert not SCHEDULE.due(100.0, 100.49, 999_999, behind=False)  # a burst is not committed early
    assert SCHEDULE.due(100.0, 100.5, 1, behind=False)
    assert SCHEDULE.due(100.0, 160.0, 1, behind=False)


def test_catching_up_a_commit_waits_for_the_catch_up_interval_or_max_pending_changes():
    assert not SCHEDULE.due(100.0, 100.5, 999, behind=True)
    assert not SCHEDULE.due(100.0, 104.99, 999, behind=True)
    assert SCHEDULE.due(100.0, 105.0, 1, behind=True)
    assert SCHEDULE.due(100.0, 100.1, 1000, behind=True)


@pytest.fixture
def indexer_of(event_store, store_url, index_root):
    """Starts an indexer thread on the store as `up` does, with the schedule's other reasons to commit
    (catching up, too many changes pending) out of reach: what it commits while running, the interval did."""
    running = []

    def start(commit_interval: float) -> tuple[Config, SearchIndexer]:
        config = config_of(store_url, index_root, commit_interval=commit_interval)
        projection = search_projection(config)
        projection.claim_writer()
        indexer = SearchIndexer(event_store, projection, commit_interval=commit_interval,
                                catch_up_interval=3600, max_pending=10**9)
        stop = threading.Event()
        running.append((stop, IndexerThread(lambda: indexer, stop)))
        return config, indexer

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(10)


def test_a_message_appended_is_committed_by_the_interval_while_the_indexer_runs(indexer_of, event_store):
    config, _ = indexer_of(commit_interval=0.25)
    index = open_search_index(config)
    for i in range(3):
        event_store.append([message(10 + i, f"needle{i} in the haystack")])
        # How soon is the bench's to measure (bench/freshness.py); a test asserts only that it happens.
        assert wait_for(lambda: index.search(f"needle{i}", EVERYTHING).total == 1, 60) is not None
    assert index.position() == event_store.head()


def test_a_message_applied_is_not_searchable_before_the_interval_has_passed(indexer_of, event_store):
    config, indexer = indexer_of(commit_interval=3600)
    for i, text in enumerate(["needle in the haystack", "and a second page"]):
        event_store.append([message(i, text)])
        assert wait_for(lambda: indexer.applied_position == event_store.head(), 60) is not None
    # The second page applied, the indexer is past whatever it decided after the first.

    assert open_search_index(config).search("needle", EVERYTHING).total == 0
    assert open_search_index(config).position() == 0


def test_a_burst_of_more_than_a_page_caught_up_is_committed_by_the_interval_not_held_for_catch_up(
    indexer_of, event_store
):
    config, _ = indexer_of(commit_interval=0.25)
    index = open_search_index(config)
    event_store.append([message(0, "warming up")])
    assert wait_for(lambda: index.search("warming", EVERYTHING).total == 1, 60) is not None
    event_store.append([message(i, f"burst {i}", stanza_id=f"b{i}") for i in range(5000)])  # pages of 2000
    # More than a page at once is still "caught up" (far below the catch-up lag): held back for the
    # catch-up interval (an hour here) it would never be found.
    assert wait_for(lambda: index.search("burst", EVERYTHING, limit=1).total == 5000, 60) is not None
    assert index.position() == event_store.head()


def test_resumes_from_its_committed_position_without_duplicates(event_store, store_url, index_root):
    config = config_of(store_url, index_root)
    event_store.append([message(i, f"first {i}") for i in range(50)])
    SearchIndexer(event_store, search_projection(config), commit_interval=0.25).catch_up()
    event_store.append([message(100 + i, f"second {i}") for i in range(30)])
    indexer = SearchIndexer(event_store, search_projection(config), commit_interval=0.25)
    assert indexer.projection.position() < event_store.head()
    indexer.catch_up()
    index = open_search_index(config)
    assert index.search("first", EVERYTHING).total == 50
    assert index.search("second", EVERYTHING).total == 30
    assert index.search("", EVERYTHING).total == 80
    status = search_status(config, event_store)
    assert (status.position, status.lag) == (event_store.head(), 0)


def test_a_page_that_fails_half_way_commits_nothing(event_store, store_url, index_root, monkeypatch):
    config = config_of(store_url, index_root)
    event_store.append([message(i, f"fine {i}") for i in range(10)])
    SearchIndexer(event_store, search_projection(config), commit_interval=0.25).catch_up()
    committed = event_store.head()
    event_store.append([message(20, "also fine"), message(21, "poison"), message(22, "after")])
    real = documents.to_tantivy

    def failing(line):
        if line.body == "poison":
            raise ValueError("disk on fire")
        return real(line)

    monkeypatch.setattr(documents, "to_tantivy", failing)
    indexer = SearchIndexer(event_store, search_projection(config), commit_interval=0.25)
    with pytest.raises(Exception, match="disk on fire"):
        indexer.run(threading.Event())
    indexer.projection.close()
    assert open_search_index(config).position() == committed
    monkeypatch.setattr(documents, "to_tantivy", real)
    SearchIndexer(event_store, search_projection(config), commit_interval=0.25).catch_up()
    index = open_search_index(config)
    assert index.search("also", EVERYTHING).total == 1  # once, not twice
    assert index.search("", EVERYTHING).total == 13


def test_rebuild_swaps_in_a_fresh_generation_that_the_running_indexer_follows(running, event_store, index_root):
    config, index = running
    event_store.append(
        [message(i, f"old {i}", message_id=f"m{i}") for i in range(20)]
        + [make(ev.MessageCorrected, 30, nick="alice", replaces_id="m3", body="corrected text")]
    )
    assert wait_for(lambda: index.position() == event_store.head(), 30) is not None
    before = index.location.current()

    report = rebuild(event_store, [search_projection(config)])

    assert report.position == event_store.head()
    assert index.location.current() != before
    assert before.exists()  # kept for readers still holding it
    assert index.search("corrected", EVERYTHING).total == 1
    assert index.search("old", EVERYTHING).total == 19
    assert index.search("old", COMPLIANCE).total == 20
    event_store.append([message(50, "after the swap")])
    assert wait_for(lambda: index.search("swap", EVERYTHING).total == 1, 30) is not None
    assert index.location.current().name != before.name


def test_an_index_of_another_schema_is_refused_until_rebuilt(event_store, store_url, index_root):
    import tantivy

    from archive.errors import StoreError

    config = config_of(store_url, index_root)
    event_store.append([message(1, "kept safe")])
    location = search_projection(config).location
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("something_else", stored=True)
    old_directory = location.new_generation()
    tantivy.Index(builder.build(), path=str(old_directory))
    location.swap(old_directory)

    reader = open_search_index(config)  # an API process starts anyway
    with pytest.raises(StoreError, match="rebuild"):
        reader.search("kept", EVERYTHING)
    with pytest.raises(StoreError, match="rebuild"):
        SearchIndexer(event_store, search_projection(config), commit_interval=0.25).catch_up()

    rebuild(event_store, [search_projection(config)])
    assert reader.search("kept", EVERYTHING).total == 1


def test_a_second_indexer_on_the_same_index_is_refused_at_start(running, event_store):
    from archive.errors import StoreError

    config, _ = running
    with pytest.raises(StoreError, match="another process"):
        start_search_indexer(config, event_store, threading.Event())


def test_indexes_of_the_same_log_rank_equal_scores_alike_whatever_their_segments(event_store, index_root):
    """One index per API host: built in one commit or in eight, the same query gives the same page."""
    from projections.search import IndexLocation, SearchIndex, SearchIndexProjection

    def catch_up(path):
        projection = SearchIndexProjection(IndexLocation(path))
        try:
            SearchIndexer(event_store, projection, commit_interval=0.05).catch_up()
        finally:
            projection.close()

    for i in range(8):  # host b follows the log as it grows: a segment per commit
        event_store.append([message(i, f"tied word {i % 2}")])
        catch_up(index_root / "b")
    catch_up(index_root / "a")  # host a catches up at once: one segment
    pages = [
        [hit.position for hit in SearchIndex(IndexLocation(index_root / host)).search("tied", EVERYTHING, limit=5).hits]
        for host in "ab"
    ]
    assert pages[0] == pages[1] == sorted(pages[0]) and len(pages[0]) == 5


@pytest.mark.parametrize("text", ["tied", '"tied word"'])
def test_a_run_of_equal_scores_longer_than_the_tie_window_is_paged_by_key(event_store, index_root, monkeypatch, text):
    """A word's run past the window is fetched again; a phrase's is fetched whole at once: the same page either way."""
    from projections.search import relevancepage
    from projections.search import IndexLocation, SearchIndex, SearchIndexProjection

    monkeypatch.setattr(relevancepage, "TIE_WINDOW", 2)
    monkeypatch.setattr(relevancepage, "MAX_TIE_RUN", 30)
    for i in range(12):  # a segment per commit, the newest first in no particular order
        event_store.append([message(i, "tied word")])
        projection = SearchIndexProjection(IndexLocation(index_root))
        try:
            SearchIndexer(event_store, projection, commit_interval=0.05).catch_up()
        finally:
            projection.close()
    index = SearchIndex(IndexLocation(index_root))
    everything = [hit.position for hit in index.search(text, EVERYTHING, limit=12).hits]
    first = index.search(text, EVERYTHING, limit=4)
    second = index.search(text, EVERYTHING, limit=4, cursor=first.next_cursor)
    assert everything == sorted(everything) and len(everything) == 12
    assert [hit.position for hit in first.hits + second.hits] == everything[:8]


def _mixed_log(seed: int, count: int) -> list[ev.Event]:
    """Posts in three rooms with corrections and retractions of recent and of long-past messages,
    some arriving before their message (backfill order)."""
    rng = random.Random(seed)
    rooms = ["lobby@conference.localhost", "dev@conference.localhost", "ops@conference.localhost"]
    words = ["deploy", "server", "fox", "lazy", "quick", "brown", "cat", "kube"]
    events: list[ev.Event] = []
    for i in range(count):
        room, nick = rng.choice(rooms), rng.choice(["alice", "bob", "carol"])
        text = " ".join(rng.choices(words, k=rng.randint(1, 5)))
        target = rng.choice([i - 1, i - 2, rng.randrange(i + 1), i + 3])  # recent, long past, not yet archived
        kind = rng.choices(["post", "correct", "retract"], [8, 2, 1])[0]
        if kind == "post":
            events.append(message(i, text, nick=nick, room=room, stanza_id=f"s{i}", message_id=f"m{i}"))
        elif kind == "correct":
            events.append(make(ev.MessageCorrected, i, room=room, nick=nick, replaces_id=f"m{target}", body=text,
                               stanza_id=f"c{i}", message_id=f"mc{i}"))
        else:
            events.append(make(ev.MessageRetracted, i, room=room, target_id=f"s{target}", by_nick=nick,
                               moderated=rng.random() < 0.3))
    return events


def test_a_rebuilt_index_answers_as_one_built_by_following_the_log(event_store, index_root):
    """A rebuild (few, large commits) and an indexer that followed the log as it grew (a commit per
    page) settle corrections and retractions alike: the same hits, texts, flags, totals and facets."""
    from projections.search import IndexLocation, SearchIndex, SearchIndexProjection

    tuning = {"hold": 40, "window": 60}  # corrections past both: written documents replaced, ids looked up in the index
    followed = SearchIndexProjection(IndexLocation(index_root / "followed"), heap_mb=20, **tuning)
    events = _mixed_log(seed=7, count=1200)
    try:
        for start in range(0, len(events), 150):
            event_store.append(events[start : start + 150])
            SearchIndexer(event_store, followed, commit_interval=0.05, page_size=64).catch_up()
    finally:
        followed.close()
    rebuilt = SearchIndexProjection(IndexLocation(index_root / "rebuilt"), heap_mb=20, **tuning)
    rebuild(event_store, [rebuilt], commit_every=500, page_size=100)

    def answers(name: str, text: str, scope: Scope) -> list[dict]:
        """Every page of the newest-first walk, without its cursor (tied to its index)."""
        index, pages, cursor = SearchIndex(IndexLocation(index_root / name), reload_interval=0), [], None
        while True:
            page = msgspec.to_builtins(index.search(text, scope, sort="newest", limit=100, cursor=cursor, facets=True))
            cursor = page.pop("next_cursor", None)
            pages.append(page)
            if cursor is None:
                return pages

    for scope in (EVERYTHING, COMPLIANCE):
        for text in ["fox", "deploy OR cat", '"quick brown"', "is:edited", "from:bob lazy", "room:dev kube"]:
            expected = answers("followed", text, scope)
            assert expected[0]["total"] > 0, text
            assert answers("rebuilt", text, scope) == expected, (text, scope)
