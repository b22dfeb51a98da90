"""A build's refs keyed at its end where the recorder defers keys (PostgreSQL: ``keys_after_building``), or before
the build first looks them up or deletes from them; the views are those an incremental run makes."""

from __future__ import annotations

import pytest

from archive import events as ev
from projections.rebuild import rebuild
from projections.transcripts import view as transcript_view
from projections.viewdb_backends import SQLiteViewRecorder
from tests.factories import make, message
from tests.projections.conftest import catch_up, dump
from tests.projections.test_writer import index_names


def _refs_keyed(recorder, generation: int) -> bool:
    table = recorder.table_name("transcripts", generation, "refs")
    if isinstance(recorder, SQLiteViewRecorder):  # keyed by its primary key (WITHOUT ROWID), always
        rows = recorder.read_rows("SELECT sql FROM sqlite_master WHERE name=?", (table,))
        return "PRIMARY KEY (ref_key, id)" in rows[0]["sql"]
    rows = recorder.read_rows(
        "SELECT indexdef FROM pg_indexes WHERE schemaname=? AND tablename=?", (recorder.datastore.schema, table)
    )
    return any("UNIQUE" in row["indexdef"] and "(ref_key, id)" in row["indexdef"] for row in rows)


def test_a_build_keys_its_refs_at_its_end_where_the_recorder_defers_keys(event_store, views):
    event_store.append([message(t, f"line {t}") for t in range(1, 10)])
    recorder = views.recorder
    assert recorder.keys_after_building == (not isinstance(recorder, SQLiteViewRecorder))
    target = views.projections(["transcripts"], load=False)[0]
    fresh = target.begin_rebuild()
    try:
        assert _refs_keyed(recorder, fresh.generation) == (not recorder.keys_after_building)
    finally:
        target.abort_rebuild(fresh)
    rebuild(event_store, [target], commit_every=4, background=False)
    assert _refs_keyed(recorder, recorder.generations("transcripts")[0])


@pytest.mark.parametrize("background", [False, True])
def test_a_build_keys_its_refs_before_it_looks_them_up_or_deletes_from_them(event_store, views, monkeypatch,
                                                                              background):
    """A correction naming a message committed two commits before (a look-up in the view), and a message arriving
    commits after the correction that awaited it (the committed correction line taken into it: its refs deleted)."""
    early = [make(ev.MessageCorrected, 1, nick="ann", replaces_id="x1", body="fixed", stanza_id="c1"),
             message(2, "first", "bob", stanza_id="s2")]
    filler = [message(t, f"line {t}", "cy") for t in range(3, 20)]
    late = [make(ev.MessageCorrected, 20, nick="bob", replaces_id="s2", body="first!", stanza_id="c20"),
            message(21, "fxed", "ann", message_id="x1")]
    event_store.append(early + filler + late)
    catch_up(event_store, views)
    incremental = dump(views)
    recorder, looked_up = views.recorder, []
    select_by_ref = transcript_view.select_by_ref

    def spied(query, room, ref, owned=False):
        looked_up.append(_refs_keyed(recorder, recorder.generations("transcripts")[1]))
        return select_by_ref(query, room, ref, owned)

    monkeypatch.setattr(transcript_view, "select_by_ref", spied)
    deleted = []
    statements = transcript_view.TranscriptProjection._statements

    def spied_statements(self):
        made = statements(self)
        if any(rows for statement, rows in made if statement.startswith("DELETE FROM {refs}")):
            deleted.append(_refs_keyed(recorder, self.generation))
        return made

    monkeypatch.setattr(transcript_view.TranscriptProjection, "_statements", spied_statements)
    rebuild(event_store, views.projections(load=False), commit_every=4, page_size=1, background=background)
    assert dump(views) == incremental
    assert looked_up and all(looked_up)
    assert deleted and all(deleted)


def test_a_build_keeps_the_indexes_of_few_lines_up_from_its_start(event_store, views):
    """The partial indexes of the few subject lines and of the few lines changed or late are made on the empty
    table (kept up by each insert), not built by a scan of the whole table at the build's end; the other query
    index is not there yet."""
    recorder = views.recorder
    target = views.projections(["transcripts"], load=False)[0]
    fresh = target.begin_rebuild()
    try:
        names = index_names(recorder)
    finally:
        target.abort_rebuild(fresh)
    early = {recorder.table_name("transcripts", fresh.generation, name) for name in ("lines_subject", "lines_changed")}
    assert early <= names
    assert recorder.table_name("transcripts", fresh.generation, "lines_time") not in names
