"""Rebuilds of one search index and whose turn they are: an index of an earlier schema rebuilt in the
background by `up`, one rebuild at a time, and the rebuild a purge applied to another index owes this one."""

from __future__ import annotations

import threading
import time

import pytest

from chat_archive.bootstrap import open_search_index, search_projection, start_search_indexer
from projections.rebuild import rebuild
from projections.search import Scope, SearchIndexer
from tests.factories import at, message

from .indexing import config_of, wait_for
from .old_schema import downgrade, stored_as_schema_6, store_blob_as_bytes

EVERYTHING = Scope(rooms=None)


def test_up_rebuilds_an_index_of_an_older_schema_in_the_background_while_messages_arrive(event_store, store_url, index_root):
    """After an upgrade that changed the index schema, `up` (``rebuild_unusable``) keeps running: the index is
    rebuilt from the log in the indexer's thread (here after another rebuild of it has finished), searches
    answer an error until it is swapped in, and the messages appended meanwhile are found after it."""
    from archive.errors import StoreError
    from projections.search import IndexLocation

    config = config_of(store_url, index_root)
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

        assert wait_for(found_all, 30) is not None
        assert thread.is_alive()
    finally:
        other.release()
        stop.set()
        thread.join(10)


def test_up_rebuilds_an_index_that_stored_its_lines_as_bytes(event_store, store_url, index_root):
    """Schema 5 stored a line as bytes (read back a byte at a time): tantivy opens no such index with this
    program's schema, and `up` rebuilds it from the log; its lines read back as written, past ASCII too."""
    from archive.errors import StoreError
    from projections.search import IndexLocation

    config = config_of(store_url, index_root)
    bodies = [f"before upgrade {i} \u00e9t\u00e9 \U0001f600 <&>" for i in range(30)]
    event_store.append([message(i, body, room="a@conference.localhost") for i, body in enumerate(bodies)])
    rebuild(event_store, [search_projection(config)])
    store_blob_as_bytes(IndexLocation(config.index.path).current())
    index = open_search_index(config)
    with pytest.raises(StoreError, match="rebuild"):
        index.search("upgrade", EVERYTHING, limit=1)
    assert [hit.body for hit in _oldest_after_up(config, event_store, index, "upgrade").hits] == bodies


def test_up_rebuilds_an_index_that_stored_its_lines_as_json_objects(event_store, store_url, index_root, monkeypatch):
    """Schema 6 stored a line as its JSON object alone, which this program reads as no line (7 stores a hit's time
    and bare JID ahead of it): its version refuses searches, and `up` rebuilds it from the log."""
    from archive.errors import StoreError
    from projections.search import documents

    config = config_of(store_url, index_root)
    bodies = [f"before upgrade {i} \u00e9t\u00e9 <&>" for i in range(30)]
    event_store.append([message(i + 0.5, body, room="a@conference.localhost", jid="Bob@Example.org/x")
                        for i, body in enumerate(bodies)])
    with monkeypatch.context() as schema_6:
        schema_6.setattr(documents, "stored", stored_as_schema_6)
        rebuild(event_store, [search_projection(config)])
    downgrade(search_projection(config), 6)
    index = open_search_index(config)
    with pytest.raises(StoreError, match="schema version 6"):
        index.search("upgrade", EVERYTHING, limit=1)
    hits = _oldest_after_up(config, event_store, index, "upgrade").hits
    expected = [(body, at(i), "bob@example.org") for i, body in enumerate(bodies)]
    assert [(hit.body, hit.time, hit.jid) for hit in hits] == expected


def _oldest_after_up(config, event_store, index, text: str):
    """The oldest first page of ``text`` once `up` (``rebuild_unusable``) has rebuilt an unusable index."""
    from archive.errors import StoreError

    stop = threading.Event()
    thread = start_search_indexer(config, event_store, stop, rebuild_unusable=True)
    try:
        def found():
            try:
                return index.search(text, EVERYTHING, sort="oldest", limit=50)
            except StoreError:
                return None  # the old generation, until the swap

        assert wait_for(found, 30) is not None
        return found()
    finally:
        stop.set()
        thread.join(10)


def test_two_rebuilds_of_one_index_at_once_run_in_turn(event_store, store_url, index_root):
    """A purge's rebuild while `up` rebuilds an index of an earlier schema, or `rebuild search` meanwhile: each
    swap used to delete the other's generation (its next commit failed, or the link named a deleted one)."""
    config = config_of(store_url, index_root)
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

    config = config_of(store_url, index_root)
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

    config = config_of(store_url, index_root, commit_interval=0.05)
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
        assert wait_for(lambda: IndexLocation(config.index.path).current() != owing, 30) is not None
        assert wait_for(lambda: not owing.exists(), 30) is not None  # it holds what was purged: dropped
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

    config = config_of(store_url, index_root)
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

    config = config_of(store_url, index_root)
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
