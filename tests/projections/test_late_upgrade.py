"""A transcript view made before late lines (no ``late`` column; the widget's feed indexed by ``lines_rev``
(room, rev) over every line; refs of (bucket, ref, id)), or before one-number ref keys (refs of (bucket, ref, id)
only), is upgraded in place by its projection as it starts, on both stores: then it
holds every row a rebuild of the same log makes (``late`` too), the feed pages it as it pages a rebuilt view,
and the projection goes on with it as with a rebuilt one. An interrupted upgrade leaves the older layout."""

from __future__ import annotations

import threading
import time

import psycopg
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
from projections.views import Views
from query_api.web import widget_feed
from tests.factories import make, message
from tests.projections.conftest import catch_up
from tests.projections.test_build_keys import _refs_keyed
from tests.projections.test_properties import ROOMS, Backend, run_incremental, steps
from tests.projections.test_writer import index_names
from tests.services.postgres import POSTGRES_DSN
from tests.query_api.web.test_widget_feed import SECRET

LOBBY = "lobby@conference.localhost"
# Every column by name: an upgraded table has ``late`` after ``fields`` (added), a rebuilt one before it.
TABLES = {"lines": ("id, room, ts, kind, shown, awaiting, rev, late, fields", "id"),
          "refs": ("ref_key, id", "ref_key, id"), "rooms": ("id, jid", "id")}


def to_layout_before_ref_keys(recorder) -> int:
    """The live transcript generation brought back to the layout before one-number ref keys; its number."""
    generation = recorder.generations("transcripts")[0] or TranscriptProjection(recorder).generation
    name = recorder.table_name("transcripts", generation, "refs")
    for statement in ("CREATE TABLE {refs_bucketed} (bucket INTEGER NOT NULL, ref INTEGER NOT NULL, "
                      "id INTEGER NOT NULL, PRIMARY KEY (bucket, ref, id)) WITHOUT ROWID",
                      "INSERT INTO {refs_bucketed} (bucket, ref, id) SELECT ref_key >> 32, ref_key & 4294967295, id "
                      "FROM {refs}",
                      "DROP TABLE {refs}", f'ALTER TABLE {{refs_bucketed}} RENAME TO "{name}"'):
        recorder.add_indexes("transcripts", generation, [statement])
    return generation


def to_layout_before_late_lines(recorder) -> int:
    """The live transcript generation brought back to the layout before late lines (its refs bucketed too); its
    number."""
    generation = to_layout_before_ref_keys(recorder)
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
        items, after = widget_feed.since(views.transcripts, room, cursor, secret=SECRET, limit=limit)
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


@pytest.mark.parametrize("older", [to_layout_before_late_lines, to_layout_before_ref_keys],
                         ids=["before late lines", "before ref keys"])
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_upgraded_view_holds_what_a_rebuild_makes_and_feeds_the_widget_alike(kind, older):
    examples = 15 if kind == "sqlite" else 6

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(before=steps, after=steps, limit=st.integers(1, 4))
    def check(before, after, limit):
        with Backend(kind) as backend:
            run_incremental(backend, before)
            views = backend.incremental
            generation = older(views.recorder)
            columns = views.recorder.live_columns
            assert upgrade.layout_of(lambda table: columns("transcripts", table)) != upgrade.LAYOUT_THIS
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
    assert _refs_keyed(recorder, generation)  # as a build keys them (PostgreSQL: after the rows, by a unique index)
    assert not recorder.upgrade("transcripts", generation, upgrade.to_this_layout)  # once: nothing left to do
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


def test_a_reader_meanwhile_sees_the_older_layout_or_the_upgraded_one_never_a_half_upgraded_view(
    event_store, views, views_url, monkeypatch
):
    """Another process's read while the upgrade has added ``late`` and not yet set it: SQLite's reader reads
    the older layout (its snapshot) and is told the projections upgrade it; PostgreSQL's waits for the commit
    (the ALTER TABLE's lock) and reads the upgraded view. After line 3, whose time is later than line 6's: a view
    whose ``late`` is not set yet would leave line 6 out."""
    _log(event_store)
    catch_up(event_store, views, ["transcripts"])
    expected = views.transcripts.changes(LOBBY, after=3)
    assert [line.body for line in expected.lines] == ["five!", "nine again", "one, late"]
    generation = to_layout_before_late_lines(views.recorder)
    reads: list = []
    mark_late = upgrade._late

    def read(other):
        try:
            reads.append(other.transcripts.changes(LOBBY, after=3))
        except StoreError as e:
            reads.append(str(e))

    def read_meanwhile(view):
        found = mark_late(view)
        if views_url.startswith("sqlite"):
            read(other)
        else:
            reader = threading.Thread(target=read, args=(other,))
            reader.start()
            waited.append(_waits_for_a_lock(views.recorder, generation, reader))
            readers.append(reader)
        return found

    readers: list[threading.Thread] = []
    waited: list[bool] = []
    monkeypatch.setattr(upgrade, "_late", read_meanwhile)
    with Views(views_url, event_store) as other:
        TranscriptProjection(views.recorder)
        for reader in readers:
            reader.join()
    if views_url.startswith("sqlite"):
        assert len(reads) == 1 and "the projections upgrade it in place as they start" in reads[0]
    else:
        assert waited == [True] and reads == [expected]


def _waits_for_a_lock(recorder, generation: int, reader: threading.Thread) -> bool:
    """Whether a backend waits for a lock on the generation's lines (the reader's) before the reader ends."""
    table = f'"{recorder.datastore.schema}".{recorder.table_name("transcripts", generation, "lines")}'
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        while reader.is_alive():
            if conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation=%s::regclass",
                            (table,)).fetchone()[0]:
                return True
            time.sleep(0.01)
    return False


def test_a_projection_starting_while_another_process_upgrades_the_view_goes_on_with_the_upgraded_view(
    event_store, views, monkeypatch
):
    """Its first read meets the older layout, then another process's upgrade commits before its own takes the
    lock, which finds nothing to do: it reads the upgraded view, not told to rebuild one."""
    _log(event_store)
    recorder = views.recorder
    catch_up(event_store, views, ["transcripts"])
    generation = to_layout_before_late_lines(recorder)
    real = recorder.upgrade

    def upgraded_first_by_another(projection, generation, work):
        assert real(projection, generation, work)  # the other process
        return real(projection, generation, work)

    monkeypatch.setattr(recorder, "upgrade", upgraded_first_by_another)
    assert TranscriptProjection(recorder).position() == 7
    assert layout(recorder, generation) == (True, {recorder.table_name("transcripts", generation, "lines_changed")})


def test_a_read_whose_view_was_upgraded_after_it_failed_is_answered_not_refused(event_store, views, monkeypatch):
    """An API host's read of a view made before late lines fails; the projection host's upgrade commits before
    the read looks at the view's columns to say why: the view is now of this layout, so the read is answered (it
    was told the view needs a rebuild)."""
    _log(event_store)
    recorder = views.recorder
    catch_up(event_store, views, ["transcripts"])
    to_layout_before_late_lines(recorder)
    columns, upgraded = recorder.live_columns, []

    def upgrading_first(projection, table):
        if not upgraded:
            upgraded.append(TranscriptProjection(recorder))  # its start upgrades the view
        return columns(projection, table)

    monkeypatch.setattr(recorder, "live_columns", upgrading_first)
    changes = views.transcripts.changes(LOBBY)
    assert upgraded and [line.body for line in changes.lines] == [
        "two, late", "nine", "five!", "nine again", "one, late"]
