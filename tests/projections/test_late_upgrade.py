"""A transcript view made before late lines (no ``late`` column; the widget's feed indexed by ``lines_rev``
(room, rev) over every line) is upgraded in place by its projection as it starts, on both stores: then it
holds every row a rebuild of the same log makes (``late`` too), the feed pages it as it pages a rebuilt view,
and the projection goes on with it as with a rebuilt one. An interrupted upgrade leaves the older layout."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import events as ev
from archive.errors import StoreError
from chat_archive.bootstrap import projection_status
from chat_archive.config import load_config
from projections.rebuild import rebuild
from projections.transcripts import upgrade
from projections.transcripts.view import TranscriptProjection
from query_api.web import widget_feed
from tests.factories import make, message
from tests.projections.conftest import catch_up
from tests.projections.test_properties import ROOMS, Backend, run_incremental, steps
from tests.projections.test_writer import index_names

LOBBY = "lobby@conference.localhost"
# Every column by name: an upgraded table has ``late`` after ``fields`` (added), a rebuilt one before it.
TABLES = {"lines": ("id, room, ts, kind, shown, awaiting, rev, late, fields", "id"),
          "refs": ("bucket, ref, id", "bucket, ref, id"), "rooms": ("id, jid", "id")}


def to_layout_before_late_lines(recorder) -> int:
    """The live transcript generation brought back to the layout before late lines; its number."""
    generation = recorder.generations("transcripts")[0] or TranscriptProjection(recorder).generation
    # One at a time: the statements of one call may run at once (each index in a backend of its own on PostgreSQL).
    # The index first: SQLite refuses to drop a column an index names. {}: qualified, as PostgreSQL drops it.
    for statement in ("DROP INDEX IF EXISTS {lines_changed}", "ALTER TABLE {lines} DROP COLUMN late",
                      "CREATE INDEX [lines_rev] ON {lines} (room, rev)"):
        recorder.add_indexes("transcripts", generation, [statement])
    return generation


def rows(views) -> dict:
    def read(table):
        columns, order = TABLES[table]
        return views.recorder.read("transcripts", lambda query, _: [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in dict(r).values())
            for r in query(f"SELECT {columns} FROM {{{table}}} ORDER BY {order}")])

    return {table: read(table) for table in TABLES} | {"position": views.projections(["transcripts"])[0].position()}


def feed_pages(views, room: str, limit: int) -> list:
    """Every page of the widget's feed of ``room`` from its start, and each page's cursor."""
    cursor, pages = {"r": 0}, []
    while True:
        items, after = widget_feed.since(views.transcripts, room, cursor, limit=limit)
        pages.append((items, after))
        if after == cursor:
            return pages
        cursor = after


def layout(recorder, generation: int) -> tuple[bool, set[str]]:
    """Whether the lines have ``late``, and which of the feed's indexes the generation has."""
    try:
        recorder.read_rows(recorder.sql("SELECT late FROM {lines} LIMIT 0", "transcripts", generation))
        late = True
    except StoreError:
        late = False
    names = {recorder.table_name("transcripts", generation, name) for name in ("lines_rev", "lines_changed")}
    return late, names & index_names(recorder)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_upgraded_view_holds_what_a_rebuild_makes_and_feeds_the_widget_alike(kind):
    examples = 15 if kind == "sqlite" else 6

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(before=steps, after=steps, limit=st.integers(1, 4))
    def check(before, after, limit):
        with Backend(kind) as backend:
            run_incremental(backend, before)
            views = backend.incremental
            generation = to_layout_before_late_lines(views.recorder)
            views.projections(["transcripts"])  # the projection starts: it upgrades the view
            assert layout(views.recorder, generation) == (
                True, {views.recorder.table_name("transcripts", generation, "lines_changed")})
            rebuild(backend.store, backend.scratch.projections(["transcripts"]))
            assert rows(views) == rows(backend.scratch)
            for room in ROOMS:
                assert feed_pages(views, room, limit) == feed_pages(backend.scratch, room, limit)
            # The projection goes on with the upgraded view as with a rebuilt one.
            run_incremental(backend, after)
            rebuild(backend.store, backend.scratch.projections(["transcripts"]))
            assert rows(views) == rows(backend.scratch)

    check()


def _log(event_store) -> None:
    """Lines of earlier times than their room's latest (late), a correction, a line taken into another."""
    event_store.append([
        message(5, "five"), message(2, "two, late"), message(9, "nine"),
        make(ev.MessageCorrected, 10, nick="alice", replaces_id="sid-5-alice", body="five!"),
        message(9, "nine again", nick="bob"), message(1, "one, late"),
        message(3, "elsewhere", room="other@conference.localhost"),
    ])


def test_an_interrupted_upgrade_leaves_the_older_layout_and_a_retry_upgrades_it_once(
    event_store, views, monkeypatch
):
    _log(event_store)
    recorder = views.recorder
    TranscriptProjection(recorder)
    catch_up(event_store, views, ["transcripts"])
    generation = to_layout_before_late_lines(recorder)
    before = rows_without_late(views)
    # A failure in its last statement, after the others, before its commit.
    monkeypatch.setattr(upgrade, "DROP_LINES_REV", "SELECT no_such_column FROM {lines}")
    with pytest.raises(StoreError):
        TranscriptProjection(recorder)
    assert layout(recorder, generation) == (False, {recorder.table_name("transcripts", generation, "lines_rev")})
    assert rows_without_late(views) == before
    # API hosts reading it meanwhile are told what upgrades it, never fed from a half-upgraded view.
    with pytest.raises(StoreError, match="the projections upgrade it in place as they start"):
        views.transcripts.changes(LOBBY)
    monkeypatch.undo()
    TranscriptProjection(recorder)
    upgraded = rows(views)
    assert [row[7] for row in upgraded["lines"]] == [0, 1, 0, 0, 1, 0]  # late: "two" and "one" (lines 2 and 6)
    assert layout(recorder, generation) == (True, {recorder.table_name("transcripts", generation, "lines_changed")})
    assert not recorder.upgrade("transcripts", generation, upgrade.add_late_lines)  # once: nothing left to do
    TranscriptProjection(recorder)
    assert rows(views) == upgraded and recorder.generations("transcripts")[0] == generation
    changes = views.transcripts.changes(LOBBY)
    assert [line.body for line in changes.lines] == ["two, late", "nine", "five!", "nine again", "one, late"]


def rows_without_late(views) -> list:
    return views.recorder.read("transcripts", lambda query, _: [
        dict(r) | {"fields": bytes(r["fields"])}
        for r in query("SELECT id, room, ts, kind, shown, awaiting, rev, fields FROM {lines} ORDER BY id")])


def test_a_view_older_than_the_layout_before_late_lines_is_still_refused(event_store, views):
    """Lines without ``late`` nor ``fields`` (stored as maps): no upgrade makes them, the rebuild does."""
    _log(event_store)
    recorder = views.recorder
    generation = to_layout_before_late_lines(recorder)
    recorder.add_indexes("transcripts", generation, ["ALTER TABLE {lines} RENAME COLUMN fields TO data"])
    with pytest.raises(StoreError, match="rebuild it with chat-archive rebuild transcripts"):
        TranscriptProjection(recorder)
    assert layout(recorder, generation) == (False, {recorder.table_name("transcripts", generation, "lines_rev")})


def test_status_reads_a_view_made_before_late_lines_and_leaves_it_as_it_is(event_store, views, store_url):
    _log(event_store)
    catch_up(event_store, views, ["transcripts"])
    generation = to_layout_before_late_lines(views.recorder)
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
    assert [p.position for p in projection_status(config, event_store) if p.name == "transcripts"] == [7]
    assert layout(views.recorder, generation) == (
        False, {views.recorder.table_name("transcripts", generation, "lines_rev")})
