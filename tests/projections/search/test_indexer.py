"""The index kept up to date from a real event store: freshness, resume, rollback, rebuild."""

from __future__ import annotations

import random
import threading
import time

import msgspec
import pytest

from archive import events as ev
from archive.settings import StoreSettings
from chat_archive.bootstrap import open_search_index, search_projection, search_status, start_search_indexer
from chat_archive.config import Config
from projections.rebuild import rebuild
from projections.search import IndexerThread, Scope, SearchIndexer
from projections.search import documents
from projections.search.indexer import CommitSchedule
from projections.settings import IndexSettings
from tests.factories import make, message

from .old_schema import downgrade

EVERYTHING = Scope(rooms=None)
COMPLIANCE = Scope(rooms=None, compliance=True)


def _config(store_url, index_root, commit_interval=0.25) -> Config:
    return Config(
        store=StoreSettings(url=store_url),
        index=IndexSettings(path=str(index_root / "index"), commit_interval=commit_interval, writer_heap_mb=20),
    )


def _wait_for(predicate, timeout: float) -> float | None:
    """Poll every 5 ms; the seconds it took, or None if it never held."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        time.sleep(0.005)
    return None


@pytest.fixture
def running(event_store, store_url, index_root):
    """An indexer thread on the store (commit interval 0.5 s) and a reader, as `up` and the API hold them."""
    config = _config(store_url, index_root, commit_interval=0.5)
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
        config = _config(store_url, index_root, commit_interval=commit_interval)
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
        assert _wait_for(lambda: index.search(f"needle{i}", EVERYTHING).total == 1, 60) is not None
    assert index.position() == event_store.head()


def test_a_message_applied_is_not_searchable_before_the_interval_has_passed(indexer_of, event_store):
    config, indexer = indexer_of(commit_interval=3600)
    for i, text in enumerate(["needle in the haystack", "and a second page"]):
        event_store.append([message(i, text)])
        assert _wait_for(lambda: indexer.applied_position == event_store.head(), 60) is not None
    # The second page applied, the indexer is past whatever it decided after the first.

    assert open_search_index(config).search("needle", EVERYTHING).total == 0
    assert open_search_index(config).position() == 0


def test_a_burst_of_more_than_a_page_caught_up_is_committed_by_the_interval_not_held_for_catch_up(
    indexer_of, event_store
):
    config, _ = indexer_of(commit_interval=0.25)
    index = open_search_index(config)
    event_store.append([message(0, "warming up")])
    assert _wait_for(lambda: index.search("warming", EVERYTHING).total == 1, 60) is not None
    event_store.append([message(i, f"burst {i}", stanza_id=f"b{i}") for i in range(5000)])  # pages of 2000
    # More than a page at once is still "caught up" (far below the catch-up lag): held back for the
    # catch-up interval (an hour here) it would never be found.
    assert _wait_for(lambda: index.search("burst", EVERYTHING, limit=1).total == 5000, 60) is not None
    assert index.position() == event_store.head()


def test_resumes_from_its_committed_position_without_duplicates(event_store, store_url, index_root):
    config = _config(store_url, index_root)
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
    config = _config(store_url, index_root)
    event_store.append([message(i, f"fine {i}") for i in range(10)])
    SearchIndexer(event_store, search_projection(config), commit_interval=0.25).catch_up()
    committed = event_store.head()
    event_store.append([message(20, "also fine"), message(21, "poison"), message(22, "after")])
    real = documents.to_tantivy

    def failing(line, blob):
        if line.body == "poison":
            raise ValueError("disk on fire")
        return real(line, blob)

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
    assert _wait_for(lambda: index.position() == event_store.head(), 30) is not None
    before = index.location.current()

    report = rebuild(event_store, [search_projection(config)])

    assert report.position == event_store.head()
    assert index.location.current() != before
    assert before.exists()  # kept for readers still holding it
    assert index.search("corrected", EVERYTHING).total == 1
    assert index.search("old", EVERYTHING).total == 19
    assert index.search("old", COMPLIANCE).total == 20
    event_store.append([message(50, "after the swap")])
    assert _wait_for(lambda: index.search("swap", EVERYTHING).total == 1, 30) is not None
    assert index.location.current().name != before.name


def test_an_index_of_another_schema_is_refused_until_rebuilt(event_store, store_url, index_root):
    import tantivy

    from archive.errors import StoreError

    config = _config(store_url, index_root)
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


def test_up_rebuilds_an_index_of_an_older_schema_in_the_background_while_messages_arrive(event_store, store_url, index_root):
    """After an upgrade that changed the index schema, `up` (``rebuild_unusable``) keeps running: the index is
    rebuilt from the log in the indexer's thread (here after another rebuild of it has finished), searches
    answer an error until it is swapped in, and the messages appended meanwhile are found after it."""
    from archive.errors import StoreError
    from projections.search import IndexLocation

    config = _config(store_url, index_root)
    event_store.append([message(i, f"before upgrade {i}", room="a@conference.localhost") for i in range(300)])
    rebuild(event_store, [search_projection(config)])
    downgrade(search_projection(config))
    with pytest.raises(StoreError, match="schema version"):
        start_search_indexer(config, event_store, threading.Event())  # `chat-archive search`'s way: refused
    other = IndexLocation(config.index.path).claim_rebuild()  # `rebuild search` or a purge, running
    stop = threading.Event()
    thread = start_search_indexer(config, event_store, stop, rebuild_unusable=True)
    try:
        index = open_search_index(config)
        for i in range(300, 340):  # live traffic through the wait, the rebuild and the swap
            event_store.append([message(i, f"during upgrade {i}", room="a@conference.localhost")])
            if i == 310:
                with pytest.raises(StoreError, match="schema version"):
                    index.search("upgrade", EVERYTHING, limit=1)
                assert thread.is_alive()
                other.release()
            time.sleep(0.005)

        def found_all() -> bool:
            try:
                return index.search("upgrade", EVERYTHING, limit=1).total == 340
            except StoreError:
                return False  # the old generation, until the swap

        assert _wait_for(found_all, 30) is not None
        assert thread.is_alive()
    finally:
        other.release()
        stop.set()
        thread.join(10)


def test_two_rebuilds_of_one_index_at_once_run_in_turn(event_store, store_url, index_root):
    """A purge's rebuild while `up` rebuilds an index of an earlier schema, or `rebuild search` meanwhile: each
    swap used to delete the other's generation (its next commit failed, or the link named a deleted one)."""
    config = _config(store_url, index_root)
    event_store.append([message(i, f"turn {i}") for i in range(3000)])
    search_projection(config).close()  # the index exists: what is raced is the rebuilds' swaps
    failures = []

    def rebuild_it():
        try:
            rebuild(event_store, [search_projection(config)], commit_every=500)
        except Exception as e:  # noqa: BLE001 - what the other rebuild did to this one is the finding
            failures.append(e)

    threads = [threading.Thread(target=rebuild_it) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not [thread for thread in threads if thread.is_alive()] and failures == []
    assert open_search_index(config).search("turn", EVERYTHING, limit=1).total == 3000
    generations = sorted(d.name for d in (index_root / "index").iterdir() if d.name.startswith("gen-"))
    assert len(generations) == 2  # the live one and the one it replaced


def test_a_background_rebuild_stopped_leaves_the_old_index_and_ends_quietly(event_store, store_url, index_root):
    from archive.errors import StoreError

    config = _config(store_url, index_root)
    event_store.append([message(i, f"message {i}") for i in range(50)])
    rebuild(event_store, [search_projection(config)])
    downgrade(search_projection(config))
    before = sorted(d.name for d in (index_root / "index").iterdir())
    stop = threading.Event()
    stop.set()  # `up` stopped before the rebuild's first page was applied
    thread = start_search_indexer(config, event_store, stop, rebuild_unusable=True)
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(StoreError, match="schema version"):
        open_search_index(config).search("message", EVERYTHING)
    assert sorted(d.name for d in (index_root / "index").iterdir()) == before  # the fresh copy dropped


def test_a_purge_applied_to_another_index_is_owed_here_until_a_rebuild_even_across_a_restart(event_store, store_url, index_root):
    """The owed rebuild is written into the generation before the commit past the purge record: an indexer
    stopped before it rebuilt (here: never started) rebuilds at its next start. Its own purge's record (its
    generation's id) and a fresh generation being built owe nothing."""
    from archive.events import COMPLIANCE_STREAM, PurgeApplied
    from archive.times import utcnow
    from projections.search import IndexLocation
    from projections.search.storage import generation_id

    config = _config(store_url, index_root, commit_interval=0.05)
    event_store.append([message(i, f"kept {i}") for i in range(20)])
    projection = search_projection(config)

    def purge_applied(search_index):
        now = utcnow()
        return PurgeApplied(room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=now, purge_position=1,
                            search_index=search_index)

    indexer = SearchIndexer(event_store, projection, commit_interval=0.05)  # the index begins at this head
    event_store.append([purge_applied(generation_id(projection.directory))])  # this index's own purge
    indexer.catch_up()
    assert not projection.rebuild_owed()
    event_store.append([purge_applied("another host's index")])
    indexer.catch_up()
    assert projection.rebuild_owed()
    owing = projection.directory
    projection.close()

    stop = threading.Event()
    thread = start_search_indexer(config, event_store, stop)  # a restart
    try:
        assert _wait_for(lambda: IndexLocation(config.index.path).current() != owing, 30) is not None
        assert _wait_for(lambda: not owing.exists(), 30) is not None  # it holds what was purged: dropped
        assert not search_projection(config).rebuild_owed()  # the fresh copy owes nothing
        assert open_search_index(config).search("kept", EVERYTHING).total == 20
    finally:
        stop.set()
        thread.join(10)


def test_a_purge_applied_while_an_index_is_rebuilt_is_owed_by_the_new_copy(event_store, store_url, index_root):
    """The fresh copy may have read what the purge deleted before the deletion: it is swapped in owing a rebuild.
    A purge recorded applied before the rebuild began is not owed (a new host reading old purge records)."""
    from archive.events import COMPLIANCE_STREAM, PurgeApplied
    from archive.times import utcnow
    from projections.follower import LogFollower

    def purge_applied():
        now = utcnow()
        return PurgeApplied(room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=now, purge_position=1,
                            search_index="another host's index")

    config = _config(store_url, index_root)
    event_store.append([message(i, f"kept {i}") for i in range(20)] + [purge_applied()])
    live = search_projection(config)
    rebuild(event_store, [live])
    assert not live.rebuild_owed()  # the purge was recorded applied before this rebuild began
    fresh = live.begin_rebuild()
    fresh.began_building(event_store.head())
    event_store.append([purge_applied()])  # another host purged while this copy was being built
    LogFollower(event_store, fresh, commit_interval=60).catch_up()
    live.finish_rebuild(fresh)
    assert live.directory == fresh.directory and live.rebuild_owed()
    live.close()


def test_waiting_for_another_rebuild_of_the_index_ends_on_stop(index_root):
    """`up` stopping while its rebuild waits for another process's (a purge's, `rebuild search`)."""
    from projections.rebuild import RebuildStopped
    from projections.search import IndexLocation

    location = IndexLocation(index_root / "index")
    other = location.claim_rebuild()
    stop, outcome = threading.Event(), []

    def wait() -> None:
        try:
            location.claim_rebuild(stop).release()
            outcome.append("claimed")
        except RebuildStopped:
            outcome.append("stopped")

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # waiting
    stop.set()
    waiter.join(5)
    other.release()
    assert outcome == ["stopped"]


def test_a_failed_rebuild_after_a_purge_is_reported_and_not_started_again_at_once(event_store, store_url, index_root,
                                                                                   monkeypatch):
    from projections.search import purged

    config = _config(store_url, index_root)
    event_store.append([message(i, f"kept {i}") for i in range(5)])
    live = search_projection(config)
    rebuild(event_store, [live])
    live._owe_rebuild()  # noqa: SLF001 - as after committing past another index's purge record
    attempts, reported = [], []

    def failing(*args, **kwargs):
        attempts.append(1)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(purged, "rebuild", failing)
    owed = purged.PurgeRebuild(event_store, on_error=reported.append)
    stop = threading.Event()
    owed.ensure(live, stop)
    owed.join()
    owed.ensure(live, stop)  # at once: not again
    owed.join()
    assert attempts == [1] and "disk on fire" in reported[0] and live.rebuild_owed()
    live.close()
