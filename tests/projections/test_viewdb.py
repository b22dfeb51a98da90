"""Where the views live, and the generation guard on commits."""

from __future__ import annotations

import time

import msgspec
import pytest

from archive import events as ev
from archive.errors import ChatArchiveError, StoreError
from archive.sqlite_files import PAGE_SIZE
from chat_archive.bootstrap import rebuild_projections, views_url
from chat_archive.config import load_config
from projections.follower import ProjectionReset
from projections.lines import Line
from projections.tables import order_micros
from projections.transcripts.view import TranscriptProjection
from projections.views import Views
from projections.viewdb import GenerationChanged, ViewRecorderMixin
from projections.viewdb_backends import COPY_FROM, default_views_url
from tests.factories import at, make, message
from tests.projections.conftest import dump
from tests.projections.old_rules import as_made_before_late_lines
from tests.projections.test_writer import index_names

# What a load or a query of a transcript view of an older layout says (``view.OLDER_LAYOUT``): what happens to it.
REBUILT_AT_START = "built by an older chat-archive .*: chat-archive up or project rebuild it from the log as they start"


def test_views_live_beside_the_store_unless_configured():
    assert default_views_url("sqlite:////srv/archive/events.sqlite") == "sqlite:////srv/archive/views.sqlite"
    assert default_views_url("sqlite:///data/events.sqlite") == "sqlite:///data/views.sqlite"
    pg = "postgresql://u:p@db:5432/chat?schema=archive"
    assert default_views_url(pg) == pg
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": pg})
    assert views_url(config) == pg
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": pg, "CHAT_ARCHIVE_PROJECTIONS_URL": "sqlite:///v.sqlite"})
    assert views_url(config) == "sqlite:///v.sqlite"


def test_a_new_views_file_has_the_stores_large_pages(tmp_path):
    with Views(f"sqlite:///{tmp_path / 'views.sqlite'}") as views:
        with views.recorder.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA page_size")
            assert c.fetchone()[0] == PAGE_SIZE


def test_view_tables_and_tracking(event_store, views, store_url):
    event_store.append([message(1, "one")])
    projection = views.projections(["transcripts"])[0]
    projection.apply(list(event_store.read_log()))
    projection.commit(1)
    recorder = views.recorder
    assert recorder.max_tracking_id("transcripts#g1") == 1  # eventsourcing's tracking row, same transaction
    if store_url.startswith("postgresql"):
        schema = recorder.datastore.schema
        rows = recorder.read_rows("SELECT tablename FROM pg_tables WHERE schemaname=? ORDER BY tablename", (schema,))
        names = [r["tablename"] for r in rows]
        assert "view_transcripts_lines_g1" in names and "view_tracking" in names and "archive_store_events" in names
    with pytest.raises(StoreError):  # a position must move forward: the tracking row refuses a replay
        projection.apply([])
        projection.commit(1)


def test_a_commit_into_replaced_tables_is_refused(event_store, views):
    event_store.append([message(1, "one"), message(2, "two")])
    live = TranscriptProjection(views.recorder)
    records = list(event_store.read_log())
    live.apply(records[:1])
    fresh = live.begin_rebuild()
    fresh.apply(records)
    fresh.commit(2)
    stale_builder = TranscriptProjection(views.recorder, generation=fresh.generation, building=True)
    other = TranscriptProjection(views.recorder)  # a running projection, on the old generation
    other.apply(records[1:])
    live.finish_rebuild(fresh)
    with pytest.raises(ProjectionReset):
        other.commit(2)
    assert other.generation == fresh.generation and other.position() == 2
    with pytest.raises(GenerationChanged):
        stale_builder.apply([])
        stale_builder.commit(3)
    assert [line.body for line in views.transcripts.page("lobby@conference.localhost").lines] == ["one", "two"]


@pytest.mark.parametrize("name", ["transcripts", "presence"])
def test_a_runner_whose_view_another_runner_committed_resumes_from_the_view(event_store, views, name):
    """Two runners on one view: a holder stalled past its lease wakes beside the one that took over. Whichever
    commits changes that follow a position the view no longer holds must neither fail (that stopped `up`:
    "Failed to record tracking", or a duplicate line) nor write twice: it resumes from what the view holds."""
    event_store.append([make(ev.OccupantJoined, 0, nick="alice")] + [message(t, f"m{t}") for t in range(1, 5)])
    records = list(event_store.read_log())
    stalled, took_over = views.projections([name]) + views.projections([name])
    stalled.apply(records[:2])
    took_over.apply(records[:4])
    took_over.commit(4)
    with pytest.raises(ProjectionReset):
        stalled.commit(2)  # behind the view
    assert stalled.position() == 4
    stalled.apply(records[4:])
    stalled.commit(5)
    with pytest.raises(ProjectionReset):
        took_over.apply(records[4:])
        took_over.commit(5)  # as far as the view, from an earlier position
    took_over.apply([])
    assert took_over.position() == 5
    if name == "transcripts":
        lines = views.transcripts.page("lobby@conference.localhost").lines
        assert [line.body for line in lines if line.body] == ["m1", "m2", "m3", "m4"]
    else:
        assert [o.nick for o in views.presence.occupants_at("lobby@conference.localhost", at(9)).occupants] == ["alice"]


def test_a_transcript_view_of_an_older_layout_asks_for_a_rebuild(views):
    recorder = views.recorder
    generation = recorder.generations("transcripts")[0]
    # refs as they were before their key was bucketed
    # One at a time: the statements of one call may run at once (each index in a backend of its own on PostgreSQL).
    recorder.add_indexes("transcripts", generation, ["DROP TABLE {refs}"])
    recorder.add_indexes("transcripts", generation,
                         ["CREATE TABLE {refs} (ref INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (ref, id))"])
    with pytest.raises(StoreError, match=REBUILT_AT_START):
        TranscriptProjection(recorder)


def test_an_index_statement_naming_no_table_of_the_view_is_refused_before_any_runs(views):
    """Each statement names the generation's table it is about (``{lines}``): PostgreSQL's ``add_indexes``
    gathers that table's statistics after it (and failed on a bare TypeError for a statement naming none)."""
    recorder = views.recorder
    generation = recorder.generations("transcripts")[0]
    before = index_names(recorder)
    with pytest.raises(ChatArchiveError, match="names no table of it"):
        recorder.add_indexes("transcripts", generation, ["CREATE INDEX [lines_kind] ON {lines} (kind)",
                                                          "CREATE INDEX lines_kind ON lines (kind)"])
    assert index_names(recorder) == before


def test_a_transcript_view_made_before_late_lines_is_not_misread_and_a_rebuild_of_it_works_too(
    event_store, views, store_url
):
    """A view of lines without ``late`` (indexed by (room, rev) for the widget's feed) would feed the widget from
    an index it lacks: until a start rebuilds it (``tests/cli/test_older_layout_view``), the feed's queries say so;
    a rebuild, where an operator runs one, makes what they read."""
    event_store.append([message(1, "one"), message(2, "two")])
    as_made_before_late_lines(views)
    with pytest.raises(StoreError, match=REBUILT_AT_START):
        views.transcripts.changes("lobby@conference.localhost")
    with pytest.raises(StoreError, match=REBUILT_AT_START):
        views.transcripts.last_change("lobby@conference.localhost")
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
    rebuild_projections(config, event_store, ["transcripts"], progress=False)
    changes = views.transcripts.changes("lobby@conference.localhost")
    assert [line.body for line in changes.lines] == ["one", "two"]
    assert views.transcripts.last_change("lobby@conference.localhost") == changes.last


def test_the_rebuild_an_older_layout_asks_for_works(tmp_path, event_store, views, store_url):
    event_store.append([message(1, "one"), message(2, "two")])
    recorder = views.recorder
    generation = recorder.generations("transcripts")[0] or TranscriptProjection(recorder).generation
    # One at a time: the statements of one call may run at once (each index in a backend of its own on PostgreSQL).
    recorder.add_indexes("transcripts", generation, ["DROP TABLE {refs}"])
    recorder.add_indexes("transcripts", generation,
                         ["CREATE TABLE {refs} (ref INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (ref, id))"])
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
    rebuild_projections(config, event_store, ["transcripts"], progress=False)
    assert [line.body for line in views.transcripts.page("lobby@conference.localhost").lines] == ["one", "two"]


def test_a_transcript_view_of_msgpack_maps_is_refused_not_misread_and_the_rebuild_it_asks_for_works(
    event_store, views, store_url
):
    event_store.append([message(1, "one"), message(2, "two")])
    recorder = views.recorder
    generation = recorder.generations("transcripts")[0]
    # lines as they were stored before they were positional: a msgpack map by field name, in ``data``
    recorder.add_indexes("transcripts", generation, ["DROP TABLE {lines}", "DROP TABLE {rooms}"])
    recorder.add_indexes("transcripts", generation, [
        "CREATE TABLE {lines} (id INTEGER PRIMARY KEY, room TEXT NOT NULL, ts INTEGER NOT NULL, kind TEXT NOT NULL, "
        "shown INTEGER NOT NULL, awaiting INTEGER NOT NULL, rev INTEGER NOT NULL, data BLOB NOT NULL)",
    ])  # fmt: skip
    old = Line(id=1, room="lobby@conference.localhost", at=at(1), kind="message", body="one", awaiting="x")
    recorder.commit_batch("transcripts", generation, 1, [
        ("INSERT INTO {lines} (id, room, ts, kind, shown, awaiting, rev, data) VALUES (?,?,?,?,?,?,?,?)",
         [(1, old.room, order_micros(old.at), "message", 1, 1, 1, msgspec.msgpack.encode(old))]),
    ], building=False)  # fmt: skip
    with pytest.raises(StoreError, match=REBUILT_AT_START):
        TranscriptProjection(recorder)
    # A query too (an API host reading views its projection host has not rebuilt yet): the same error, never
    # lines read from a map nor the driver's missing table.
    with pytest.raises(StoreError, match=REBUILT_AT_START):
        views.transcripts.page("lobby@conference.localhost")
    with pytest.raises(StoreError, match=REBUILT_AT_START):
        views.transcripts.line("lobby@conference.localhost", 1)
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
    rebuild_projections(config, event_store, ["transcripts"], progress=False)
    assert [line.body for line in views.transcripts.page("lobby@conference.localhost").lines] == ["one", "two"]


def test_a_commit_of_many_rows_holds_what_commits_of_one_do(event_store, views):
    """A large batch takes another write path (COPY on PostgreSQL): the same rows either way."""
    events = [message(i, f"m{i}", nick=f"n{i % 3}") for i in range(COPY_FROM + 50)]
    events += [make(ev.MessageCorrected, 300, nick="n0", replaces_id="sid-0-n0", body="fixed"),
               make(ev.OccupantJoined, 301, nick="n1"), make(ev.PresenceChanged, 302, nick="n1", show="away")]
    event_store.append(events)
    records = list(event_store.read_log())
    for projection in views.projections():
        projection.apply(records)
        projection.commit(records[-1].position)
    batched = dump(views)
    assert len(batched["transcripts.lines"]) == len(events) - 2 and len(batched["presence.spans"]) == 2
    for projection in views.projections():
        fresh = projection.begin_rebuild()
        for record in records:
            fresh.apply([record])
            fresh.commit(record.position)
        projection.finish_rebuild(fresh)
    assert dump(views) == batched


def test_a_rebuilt_postgresql_view_has_planner_statistics_when_it_goes_live(event_store, views, store_url):
    # Without them PostgreSQL took a room's day for a few rows and read it whole for a 50-line page
    # (bitmap scan + sort: ~20x the buffers of the index walk): transcript pages did not scale.
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite's planner walks the (room, ts, id) index without statistics")
    live, fresh = _rebuilt_before_finish(event_store, views)
    live.finish_rebuild(fresh)
    assert _has_statistics(views.recorder, views.recorder.table_name("transcripts", fresh.generation, "lines"))


def test_a_rebuilt_postgresql_tables_statistics_are_gathered_while_another_tables_index_is_built(
        event_store, views, store_url, monkeypatch):
    # Not all after the last index build: the lines' ANALYZE overlaps the refs' key, the longest build of a rebuild.
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite's views gather no statistics")
    live, fresh = _rebuilt_before_finish(event_store, views)
    lines = views.recorder.table_name("transcripts", fresh.generation, "lines")
    build, seen = ViewRecorderMixin.add_indexes, []

    def add_indexes(recorder, projection, generation, ddl):
        ddl = list(ddl)
        if any("[refs_key]" in statement for statement in ddl):  # waits (a while at most) for the lines' statistics
            seen.append(any(_has_statistics(recorder, lines) or time.sleep(0.1) for _ in range(300)))
        build(recorder, projection, generation, ddl)

    monkeypatch.setattr(ViewRecorderMixin, "add_indexes", add_indexes)
    live.finish_rebuild(fresh)
    assert seen == [True]
    assert all(_has_statistics(views.recorder, views.recorder.table_name("transcripts", fresh.generation, table))
               for table in ("lines", "refs", "rooms"))


def test_a_finishing_postgresql_builds_indexes_start_in_the_order_given(event_store, views, store_url, monkeypatch):
    # The longest build (the refs' key) is given first so that it starts first, whatever order the catalog lists
    # the tables in: with fewer builders than builds, a later start is a later end of the rebuild.
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite's writer builds a rebuild's indexes as it goes")
    live, fresh = _rebuilt_before_finish(event_store, views)
    recorder = views.recorder
    tables = recorder.read_rows("SELECT tablename FROM pg_tables WHERE schemaname=? AND tablename LIKE ?",
                                (recorder.datastore.schema, f"view_transcripts_%_g{fresh.generation}"))
    last_listed = tables[-1]["tablename"].removeprefix("view_transcripts_").rsplit("_g", 1)[0]
    ddl = [f"CREATE INDEX IF NOT EXISTS [first] ON {{{last_listed}}} (id)"]
    ddl += [f"CREATE INDEX IF NOT EXISTS [then_{table}] ON {{{table}}} (id)" for table in ("lines", "refs", "rooms")]
    started, build = [], ViewRecorderMixin.add_indexes
    monkeypatch.setattr(ViewRecorderMixin, "add_indexes", lambda r, p, g, statements: (
        started.extend(statements), build(r, p, g, statements)))
    monkeypatch.setattr("projections.viewdb_backends.INDEX_BUILDERS", 1)
    recorder.add_indexes("transcripts", fresh.generation, ddl)
    assert started == ddl


def _rebuilt_before_finish(event_store, views) -> tuple[TranscriptProjection, TranscriptProjection]:
    """The live transcript projection and a rebuild of 39 messages into it, committed, not yet finished."""
    event_store.append([message(i, f"line {i}") for i in range(1, 40)])
    live = TranscriptProjection(views.recorder)
    fresh = live.begin_rebuild()
    fresh.apply(list(event_store.read_log()))
    fresh.commit(39)
    return live, fresh


def _has_statistics(recorder, table: str) -> bool:
    rows = recorder.read_rows("SELECT count(*) AS n FROM pg_stats WHERE schemaname=? AND tablename=?",
                              (recorder.datastore.schema, table))
    return rows[0]["n"] > 0


def test_a_reader_follows_a_swap_made_by_another_process(event_store, views, views_url):
    """A reader remembers the live generation between reads; a rebuild elsewhere (another
    recorder, as another process has) swaps one in, and the reader's next page comes from it."""
    event_store.append([message(1, "one")])
    first = TranscriptProjection(views.recorder)
    first.apply(list(event_store.read_log()))
    first.commit(1)
    room = "lobby@conference.localhost"
    assert [line.body for line in views.transcripts.page(room).lines] == ["one"]
    event_store.append([message(2, "two")])
    with Views(views_url, event_store) as elsewhere:
        live = TranscriptProjection(elsewhere.recorder)
        fresh = live.begin_rebuild()
        fresh.apply(list(event_store.read_log()))
        fresh.commit(2)
        live.finish_rebuild(fresh)
    for _ in range(2):  # and goes on reading the new one
        assert [line.body for line in views.transcripts.page(room).lines] == ["one", "two"]
        assert views.transcripts.context(room, "1", before=0, after=1).after[0].body == "two"
