"""A rebuild's writer process: what it was given is written, and its failures reach the rebuild."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from datetime import datetime, timezone

import pytest

from archive.errors import ChatArchiveError, StoreError
from projections import rebuild as rebuild_module
from projections.rebuild import ramped, rebuild
from projections.lines import Line, Removal, from_stored, stored
from projections.transcripts.view import RoomNumbers, RoomTops, TranscriptProjection, created_statements
from projections import lines as lines_module
from projections import writer as writer_module
from projections.columns import Columns
from projections.viewdb import GenerationChanged
from projections.viewdb_backends import SQLiteViewRecorder
from projections.writer import BackgroundWriter
from tests.factories import message
from tests.projections.conftest import catch_up, dump


def test_a_background_rebuild_makes_the_views_a_plain_one_makes(event_store, views):
    event_store.append([message(t, f"line {t}") for t in range(1, 30)])
    rebuild(event_store, views.projections(load=False), commit_every=4, background=False)
    plain = dump(views)
    rebuild(event_store, views.projections(load=False), commit_every=4, background=True)
    assert dump(views) == plain
    catch_up(event_store, views)  # followed on from the rebuilt generation
    assert dump(views) == plain


def test_a_background_build_commits_little_at_both_ends_of_the_log():
    """The writer process waits for the first commit and the rebuild for the last (``ramped``)."""
    most = ramped(100, 0, 1000, 10)
    sizes, committed = [], 0
    while committed < 1000:
        sizes.append(min(most(committed), 1000 - committed))
        committed += sizes[-1]
    assert sizes[:5] == [10, 10, 20, 40, 80]
    assert max(sizes) == 100 and sizes.count(100) >= 5
    assert sizes[-5:] == [70, 35, 17, 10, 8]  # halving what is left
    assert ramped(4, 0, 1000, 10)(500) == 4  # never more than commit_every


def test_a_background_rebuild_committing_in_ramped_sizes_makes_the_views_a_plain_one_makes(
        event_store, views, monkeypatch):
    event_store.append([message(t, f"line {t}") for t in range(1, 60)])
    rebuild(event_store, views.projections(load=False), commit_every=8, background=False)
    plain = dump(views)
    monkeypatch.setattr(rebuild_module, "FIRST_COMMIT", 2)
    committed: list[int] = []
    targets = views.projections(load=False)
    begin = targets[0].begin_rebuild

    def begin_spied():
        fresh = begin()
        commit = fresh.commit
        fresh.commit = lambda position: (committed.append(position), commit(position))
        return fresh

    targets[0].begin_rebuild = begin_spied
    rebuild(event_store, targets, commit_every=8, background=True, page_size=1)  # a commit ends a page
    assert dump(views) == plain
    sizes = [b - a for a, b in zip([0, *committed], committed)]
    assert sizes[:3] == [2, 2, 4] and max(sizes) == 8 and sizes[-1] <= 2


def test_a_background_rebuild_leaves_the_views_with_their_query_indexes(event_store, views):
    """The rebuild makes them at its end (``finish_rebuild``): without that, the views go live without them."""
    event_store.append([message(t, f"line {t}") for t in range(1, 30)])
    targets = views.projections(load=False)
    rebuild(event_store, targets, commit_every=4, background=True)
    for target in targets:
        assert _query_indexes(views.recorder, target, views.recorder.generations(target.name)[0]) == "all"


def test_the_writer_process_keeps_the_query_indexes_up_from_the_start_on_sqlite_only(event_store, views):
    """On SQLite they exist before the first commit (``index_while_building``), so the rebuild's end has none
    to build; PostgreSQL's rebuild builds them from the finished tables (none exist before but those a build
    makes with its tables, ``build_ddl``)."""
    recorder = views.recorder
    assert recorder.index_while_building == isinstance(recorder, SQLiteViewRecorder)
    writers: dict = {}
    for target in views.projections(load=False):
        fresh = target.begin_rebuild()
        try:
            fresh.write_in_background(writers)
            made = _query_indexes(recorder, target, fresh.generation, besides=fresh.build_ddl())
            assert made == ("all" if recorder.index_while_building else "none")
        finally:
            target.abort_rebuild(fresh)
    for writer in writers.values():
        writer.close()


@pytest.mark.parametrize("background", [True, False])
def test_a_rebuild_another_rebuild_replaced_ends_in_the_archives_error(event_store, views, background):
    """A second rebuild of a view drops the first one's generation (``create_generation``): say, `rebuild` run
    while `up` rebuilds for a purge. The first must end in a ChatArchiveError (a message and exit 1 from the
    CLI), not the driver's "no such table" from making its query indexes on the dropped tables."""
    event_store.append([message(t, f"line {t}") for t in range(1, 5)])
    writers: dict = {}
    target = views.projections(load=False)[0]
    fresh = target.begin_rebuild()
    later = target.begin_rebuild()
    try:
        with pytest.raises(ChatArchiveError):
            if background:
                fresh.write_in_background(writers)
            target.finish_rebuild(fresh)
    finally:
        target.abort_rebuild(later)
        for writer in writers.values():
            writer.close()


def _query_indexes(recorder, target, generation: int, besides: tuple[str, ...] = ()) -> str:
    """Which of ``target``'s query indexes (``query_ddl``, but those in ``besides``) exist for ``generation``:
    "all", "none" or "some"."""
    present = index_names(recorder)
    names = re.findall(r"\[(\w+)\]", " ".join(ddl for ddl in target.query_ddl if ddl not in besides))
    assert names
    found = {recorder.table_name(target.name, generation, name) for name in names} & present
    return "all" if len(found) == len(names) else "some" if found else "none"


def test_rows_given_as_columns_reach_the_writer_as_the_same_values():
    """Integer columns travel packed (64-bit); anything else (None among them, wider numbers, text,
    bytes, floats, booleans) as it is: every row comes out with the values and types it went in with."""
    columns = Columns([1, -2, 2**63 - 1], [None, 5, 6], [2**63, 0, 1], ["a", "b", None], [b"x", b"", b"z"], [1.5, 2, 3],
                      [True, False, True])
    rows = [("INSERT INTO {t} VALUES (?,?,?,?,?,?,?)", columns), ("DELETE FROM {t} WHERE id=?", [(1,)])]
    frame = writer_module._decode(writer_module._encode(("transcripts", 1, 9, rows)))
    (_, sent), (_, plain) = frame[3]
    assert len(sent) == 3
    assert [tuple(map(type, row)) for row in sent] == [tuple(map(type, row)) for row in columns]
    assert list(sent) == list(columns) == [
        (1, None, 2**63, "a", b"x", 1.5, True), (-2, 5, 0, "b", b"", 2, False), (2**63 - 1, 6, 1, None, b"z", 3, True)
    ]
    assert [tuple(row) for row in plain] == [(1,)]


def test_columns_of_one_value_or_given_twice_reach_the_writer_as_the_same_values():
    """A column of integers all equal goes as its value and length, one given again as the earlier one's number:
    both come back as integer columns of their values, beside the others."""
    ids = [5, 6, 7]
    columns = Columns(ids, [0, 0, 0], ids, [2**40] * 3, [1, 1, None], [7, 7, 2**63], ["a", "a", "a"], list(ids),
                      [1, 1.0, 1])  # equal, not all integers: goes as it is
    rows = [("INSERT INTO {t} VALUES (?,?,?,?,?,?,?,?,?)", columns)]
    (_, sent), = writer_module._decode(writer_module._encode(("transcripts", 1, 9, rows)))[3]
    assert list(sent) == list(columns)
    assert [tuple(map(type, row)) for row in sent] == [tuple(map(type, row)) for row in columns]


def test_created_lines_make_their_rows_and_refs(monkeypatch):
    """Each line's ``fields`` the bytes it is stored as alone (the view's format), ``rev`` its own id unless an event
    changed it since, ``room`` its room's number (a room met first numbered), ``refs`` a message line's ids only;
    they cross to the writer as they are (the blobs in arrays of two lines here: a whole one and a part)."""
    monkeypatch.setattr(lines_module, "STORED_ARRAY", 2)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    lines = [
        Line(id=3, room="r@muc", at=at, kind="message", nick="a", body="hello", stanza_id="s3", origin_id="o3"),
        Line(id=4, room="r@muc", at=at, kind="retraction", nick="b", awaiting="s9",
             removed=Removal(at=at, position=4, moderated=True)),
        Line(id=5, room="q@muc", at=at, kind="joined", nick="c"),
    ]
    rooms = RoomNumbers({"q@muc": 1})
    here = created_statements(lines, {3: 7}, rooms, RoomTops(set(), None), [], json_each=False)
    there = writer_module._decode(writer_module._encode(("transcripts", 1, 9, here)))[3]
    assert [(statement, list(rows)) for statement, rows in there] == [(statement, list(rows)) for statement, rows in here]
    (_, line_rows), (_, gone_rows), (_, ref_rows) = there
    assert [row[-1] for row in line_rows] == list(stored(lines))
    assert [from_stored(row[-1]) for row in line_rows] == lines  # each blob a whole line, read back alone
    assert [row[6] for row in line_rows] == [7, 4, 5]  # rev: the line's own id unless an event changed it
    assert [row[1] for row in line_rows] == [2, 2, 1] and rooms.numbered() == [(2, "r@muc")]  # rooms by number
    assert [row[7] for row in line_rows] == [0, 0, 0] and not gone_rows  # none late: none before its room's latest
    assert sorted(row[1] for row in ref_rows) == [3, 3]  # a message line's ids only


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="different lengths"):
        Columns([1, 2, 3], [1])


def test_a_commit_the_writer_refuses_is_raised_in_the_rebuilding_process(views):
    recorder = views.recorder
    building = recorder.create_generation(TranscriptProjection.name, TranscriptProjection.ddl, live=False,
                                                     rules=TranscriptProjection.rules)
    writer = BackgroundWriter(recorder.url)
    try:
        writer.submit(TranscriptProjection.name, building + 1, 1, [])  # not the generation being built
        with pytest.raises(GenerationChanged):
            writer.wait()
    finally:
        writer.close()


def test_a_writer_that_died_is_an_error_not_a_hang(views):
    writer = BackgroundWriter(views.recorder.url)
    writer._process.kill()
    writer._process.wait()
    with pytest.raises(StoreError, match="writer process ended"):
        writer.submit(TranscriptProjection.name, 1, 1, [("INSERT INTO {lines} (id) VALUES (?)", [(1,)] * 100_000)])
        writer.wait()
    writer.close()


def test_a_commit_the_sending_thread_fails_to_write_is_an_error_not_a_hang(views, monkeypatch):
    """Whatever ends the thread writing into the pipe (here an OverflowError: no length fits zero bytes) is raised
    in the rebuilding process; the writer process, given half a commit or none, would wait for the rest."""
    monkeypatch.setattr(writer_module, "_LENGTH", 0)
    writer = BackgroundWriter(views.recorder.url)
    raised: list[BaseException] = []

    def submit_and_wait():
        try:
            writer.submit(TranscriptProjection.name, 1, 1, [("INSERT INTO {rooms} (id, jid) VALUES (?,?)", [(1, "r@muc")])])
            writer.wait()
        except BaseException as e:  # noqa: BLE001 - what the test looks at
            raised.append(e)

    handed = threading.Thread(target=submit_and_wait, daemon=True)
    handed.start()
    handed.join(20)
    try:
        assert not handed.is_alive(), "the rebuilding process waited for ever"
        assert len(raised) == 1 and isinstance(raised[0], StoreError) and "OverflowError" in str(raised[0])
    finally:
        if not handed.is_alive():
            writer.close()
        else:
            writer._process.kill()


def test_a_writer_that_died_is_raised_by_the_next_submit(views):
    """A write into the pipe of a writer that has ended fails in the sending thread; the next hand-over says so."""
    writer = BackgroundWriter(views.recorder.url)
    writer._process.kill()
    writer._process.wait()
    big = [("INSERT INTO {lines} (id) VALUES (?)", [(1,)] * 100_000)]
    writer.submit(TranscriptProjection.name, 1, 1, big)
    deadline = time.monotonic() + 20
    while writer._unsent is None and time.monotonic() < deadline:  # until the sending thread meets the closed pipe
        time.sleep(0.01)
    with pytest.raises(StoreError, match="writer process ended.*BrokenPipe"):
        writer.submit("presence", 1, 1, big)  # another projection: nothing of its own to wait for first
    writer.close()


def test_a_commit_handed_over_does_not_wait_for_the_writer_process_to_read_it(views):
    """The rebuilding process goes on applying the log while a commit goes into the pipe (larger than the pipe
    holds: the writer reads it as fast as it can), and the commit is written all the same."""
    recorder = views.recorder
    building = recorder.create_generation(TranscriptProjection.name, TranscriptProjection.ddl, live=False,
                                                     rules=TranscriptProjection.rules)
    writer = BackgroundWriter(recorder.url)
    rooms = [(number, f"room {number:08}@muc") for number in range(1, 200_000)]  # ~4 MB: the pipe holds 64 KB
    try:
        os.kill(writer._process.pid, signal.SIGSTOP)  # reading nothing
        try:
            handed = threading.Thread(target=writer.submit, args=(TranscriptProjection.name, building, 1,
                                                                  [("INSERT INTO {rooms} (id, jid) VALUES (?,?)", rooms)]))
            handed.start()
            handed.join(10)
            assert not handed.is_alive()
        finally:
            os.kill(writer._process.pid, signal.SIGCONT)
        writer.wait()
    finally:
        writer.close()
    assert len(recorder.read_rows(recorder.sql("SELECT id FROM {rooms}", TranscriptProjection.name, building))) == len(rooms)


def test_a_projection_hands_over_its_next_commit_before_its_last_is_durable_but_not_a_third(views):
    """Two commits of one projection may be in flight (``IN_FLIGHT``): the applying thread goes on while the writer
    process writes the one before; a third waits until the first is durable."""
    recorder = views.recorder
    building = recorder.create_generation(TranscriptProjection.name, TranscriptProjection.ddl, live=False,
                                                     rules=TranscriptProjection.rules)
    writer = BackgroundWriter(recorder.url)

    def commit(number: int) -> list:
        return [("INSERT INTO {rooms} (id, jid) VALUES (?,?)", [(number, f"room {number}@muc")])]

    try:
        os.kill(writer._process.pid, signal.SIGSTOP)  # writing nothing
        try:
            writer.submit(TranscriptProjection.name, building, 1, commit(1))
            second = threading.Thread(target=writer.submit, args=(TranscriptProjection.name, building, 2, commit(2)))
            second.start()
            second.join(10)
            assert not second.is_alive(), "the second commit waited for the first to be durable"
            third = threading.Thread(target=writer.submit, args=(TranscriptProjection.name, building, 3, commit(3)))
            third.start()
            third.join(0.5)
            assert third.is_alive(), "a third commit was handed over with two not durable"
        finally:
            os.kill(writer._process.pid, signal.SIGCONT)
        third.join(10)
        assert not third.is_alive()
        writer.wait()
    finally:
        writer.close()
    rows = recorder.read_rows(recorder.sql("SELECT id FROM {rooms} ORDER BY id", TranscriptProjection.name, building))
    assert [row["id"] for row in rows] == [1, 2, 3]
    assert recorder.position(TranscriptProjection.name, building) == 3


def test_the_writer_command_line_does_not_show_the_view_url(views):
    # Anyone on the host can read a process's command line; a PostgreSQL URL holds its password.
    writer = BackgroundWriter(views.recorder.url)
    try:
        with open(f"/proc/{writer._process.pid}/cmdline", "rb") as f:
            assert views.recorder.url.encode() not in f.read()
    finally:
        writer.close()


def test_the_writer_imports_nothing_from_the_working_directory(views, tmp_path, monkeypatch):
    # `python -m` would put the working directory first on sys.path: a `projections` package there (an old
    # checkout, someone else's directory) would run instead of chat-archive's.
    marker = tmp_path / "imported"
    (tmp_path / "projections").mkdir()
    (tmp_path / "projections" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    building = views.recorder.create_generation(TranscriptProjection.name, TranscriptProjection.ddl, live=False,
                                                           rules=TranscriptProjection.rules)
    writer = BackgroundWriter(views.recorder.url)
    try:
        writer.submit(TranscriptProjection.name, building, 1, [])
        writer.wait()
    finally:
        writer.close()
    assert not marker.exists() and writer._process.returncode == 0


def test_a_commit_the_writer_cannot_read_is_an_error_naming_why(views):
    """Decoding happens as the writer reads the commit: its failure is the commit's answer, not a writer that
    just ended."""
    writer = BackgroundWriter(views.recorder.url)
    try:
        frame = b"\xc1 not a commit"
        writer._process.stdin.write(len(frame).to_bytes(writer_module._LENGTH, "big") + frame)
        writer._process.stdin.flush()
        writer._sent += 1
        with pytest.raises(StoreError, match=r"could not read a commit: .*(?i:msgpack|decode|invalid)"):
            writer.wait()
    finally:
        writer.close()


def index_names(recorder) -> set[str]:
    """The names of every index in ``recorder``'s views database (its schema, on PostgreSQL)."""
    if isinstance(recorder, SQLiteViewRecorder):
        rows = recorder.read_rows("SELECT name FROM sqlite_master WHERE type='index'")
    else:
        rows = recorder.read_rows("SELECT indexname AS name FROM pg_indexes WHERE schemaname=?", (recorder.datastore.schema,))
    return {row["name"] for row in rows}


def test_a_column_given_again_after_the_256th_comes_back_as_the_same_values():
    """A column given again goes as the number of its first place: any number of columns, not one byte's worth."""
    ids = [5, 6, 7]
    columns = Columns(*([[n, n + 1, n + 2] for n in range(300)] + [ids, ids]))
    (_, sent), = writer_module._decode(writer_module._encode(("transcripts", 1, 9, [("INSERT", columns)])))[3]
    assert list(sent) == list(columns)
