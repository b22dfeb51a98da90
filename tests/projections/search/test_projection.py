"""Corrections and retractions, in one batch or across commits and restarts."""

from __future__ import annotations

import json

import pytest
import tantivy

from archive import events as ev
from archive.errors import StoreError
from archive.events import Recorded
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection
from projections.search.projection import STORE_BLOCK
from projections.search.schema import SCHEMA
from tests.factories import at, make, message

ORDINARY = Scope(rooms=None)
COMPLIANCE = Scope(rooms=None, compliance=True)


class Feeder:
    def __init__(self, root, tuning):
        self.location = IndexLocation(root / "index")
        self.tuning = tuning
        self.projection = SearchIndexProjection(self.location, heap_mb=20, **tuning)
        self.position = 0

    def feed(self, *events, commit=True):
        records = []
        for event in events:
            self.position += 1
            records.append(Recorded(self.position, event))
        self.projection.apply(records)
        if commit:
            self.projection.commit(self.position)

    def restart(self):
        self.projection.close()
        self.projection = SearchIndexProjection(self.location, heap_mb=20, **self.tuning)
        assert self.projection.position() == self.position

    def search(self, text, scope=ORDINARY):
        return SearchIndex(self.location, reload_interval=0).search(text, scope, sort="oldest", limit=50)


def correction(t, replaces, body, nick="alice", **fields):
    return make(ev.MessageCorrected, t, nick=nick, replaces_id=replaces, body=body, **fields)


# Default sizes (lines settle in memory until the commit), and documents written as soon as
# applied with ids forgotten at every commit (found again by scanning the index).
@pytest.fixture(params=[{}, {"hold": 0, "window": 1}], ids=["settled", "written-at-once"])
def feeder(index_root, request):
    return Feeder(index_root, request.param)


@pytest.mark.parametrize("between", ["nothing", "commit", "restart"])
def test_a_correction_replaces_the_text_and_keeps_the_old_for_compliance(feeder, between):
    feeder.feed(message(1, "teh deploy is done", message_id="m1"), commit=between != "nothing")
    if between == "restart":
        feeder.restart()
    feeder.feed(correction(2, "m1", "the deploy is done", message_id="m1b"), correction(3, "m1b", "the deploy is finished"))
    assert feeder.search("teh").total == 0
    assert feeder.search("done").total == 0
    [hit] = feeder.search("finished").hits
    assert (hit.position, hit.edited, hit.earlier_versions) == (1, True, [])
    [hit] = feeder.search("teh", COMPLIANCE).hits
    assert hit.earlier_versions == ["teh deploy is done", "the deploy is done"]
    assert hit.body == "the deploy is finished"
    assert "<mark>teh</mark>" in hit.snippet


def test_a_correction_by_somebody_else_does_not_touch_the_message(feeder):
    feeder.feed(message(1, "original words", message_id="m1", nick="alice"))
    feeder.feed(correction(2, "m1", "forged words", nick="mallory"))
    assert [h.position for h in feeder.search("original").hits] == [1]
    assert [(h.position, h.edited) for h in feeder.search("forged").hits] == [(2, True)]
    feeder.feed(correction(3, "m1", "honest fix", nick="alice"))
    assert [h.position for h in feeder.search("honest").hits] == [1]


def test_a_correction_of_an_unknown_message_is_indexed_and_can_be_corrected_again(feeder):
    feeder.feed(correction(1, "gone", "first try"))
    feeder.restart()
    feeder.feed(correction(2, "gone", "second try"))
    assert [(h.position, h.body, h.edited) for h in feeder.search("try").hits] == [(1, "second try", True)]


@pytest.mark.parametrize("between", ["nothing", "commit", "restart"])
def test_a_retraction_before_its_message_retracts_it_when_it_comes(feeder, between):
    feeder.feed(make(ev.MessageRetracted, 1, target_id="s9", moderated=True), commit=between != "nothing")
    if between == "restart":
        feeder.restart()
    feeder.feed(message(2, "spam spam spam", stanza_id="s9"), message(3, "spam but fine", stanza_id="s10"))
    assert [h.position for h in feeder.search("spam").hits] == [3]
    assert [(h.position, h.retracted) for h in feeder.search("spam", COMPLIANCE).hits] == [(2, True), (3, False)]


def test_only_the_author_may_retract_without_moderation(feeder):
    feeder.feed(
        message(1, "mine", origin_id="o1", nick="alice"),
        message(2, "theirs", origin_id="o2", nick="bob"),
        make(ev.MessageRetracted, 3, target_id="o1", by_nick="bob"),
        make(ev.MessageRetracted, 4, target_id="o2", by_nick="bob"),
    )
    assert [h.body for h in feeder.search("mine OR theirs").hits] == ["mine"]
    assert feeder.search("is:retracted", COMPLIANCE).total == 1


def test_time_order_puts_a_backfilled_message_after_one_archived_earlier_in_the_same_second(feeder):
    feeder.feed(
        message(5.4, "news said live", stanza_id="s-live"),
        message(5, "news backfilled", stanza_id="s-back", capture=ev.Capture.BACKFILL),
    )
    assert [hit.position for hit in feeder.search("news").hits] == [1, 2]


def test_every_generation_stores_lines_in_small_blocks(index_root):
    """The first generation and a rebuild's: their settings survive commits and reopening, and the
    index reads them back (a hit's line is then read from a small block, not a 16 KB one)."""
    location = IndexLocation(index_root / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=0)
    fresh = projection.begin_rebuild()
    for target in (projection, fresh):
        target.apply([Recorded(1, message(0, "hello blocks"))])
        target.commit(1)
        settings = json.loads((target.directory / "meta.json").read_bytes())["index_settings"]
        assert settings["docstore_blocksize"] == STORE_BLOCK < 16384
    projection.finish_rebuild(fresh)
    projection.close()
    found = SearchIndex(location, reload_interval=0).search("blocks", ORDINARY, facets=False)
    assert [hit.body for hit in found.hits] == ["hello blocks"]


def test_a_line_is_stored_as_text_that_makes_no_term(index_root):
    """A line is stored as JSON text, which tantivy reads back whole, not a byte at a time: it
    reads back as written, past ASCII and markup too, and its field, indexed as every text field is, holds no term."""
    feeder = Feeder(index_root, {})
    feeder.feed(message(1, "h\u00e9llo w\u00f6rld \U0001f600 <b>&amp;</b>"))
    assert [hit.body for hit in feeder.search("hello OR h\u00e9llo").hits] == ["h\u00e9llo w\u00f6rld \U0001f600 <b>&amp;</b>"]
    searcher = SearchIndex(feeder.location, reload_interval=0)._refresh()
    assert list(searcher.terms_with_prefix("blob", "")) == []


def test_a_hit_shows_the_whole_second_and_the_bare_jid_its_stored_line_holds_ahead_of_the_line(index_root):
    """Schema 7 stores a hit's time (the room order's whole second) and bare JID ahead of the line, made once when
    indexed: a hit shows them, and the line behind them reads back whole (the exact time, the full JID)."""
    from projections.search import documents

    feeder = Feeder(index_root, {})
    feeder.feed(message(1.25, "hello there", jid="Alice@Example.org/Phone"), message(2.5, "hello again"))
    hits = feeder.search("hello").hits
    assert [(hit.time, hit.jid) for hit in hits] == [(at(1), "alice@example.org"), (at(2), None)]
    searcher = SearchIndex(feeder.location, reload_interval=0)._refresh()
    line = documents.line_of(searcher.doc(searcher.search(tantivy.Query.term_query(SCHEMA, "key", 1), 1).hits[0][1]))
    assert (line.at, line.jid) == (at(1.25), "Alice@Example.org/Phone")


def test_a_commit_writes_one_segment(index_root):
    """One indexing thread: each commit flushes one segment, not one per core, so a rebuild leaves
    half as many for every search to visit (each costs a search its set-up per segment)."""
    location = IndexLocation(index_root / "index")
    projection = SearchIndexProjection(location, hold=0)  # the default heap: room for a thread per core
    for commit in range(3):
        first = commit * 400 + 1
        projection.apply([Recorded(first + i, message(0, f"hello {i}", stanza_id=f"s{first + i}")) for i in range(400)])
        projection.commit(first + 399)
    projection.close()
    searcher = SearchIndex(location, reload_interval=0)._refresh()
    assert (searcher.num_segments, searcher.num_docs) == (3, 1201)


def test_an_index_of_an_older_schema_is_refused_by_search_and_projection_with_the_command_to_run(index_root):
    """Schema 4 kept a retracted message's text in ``body``, where a search outside compliance scope would
    now find it: the version in the index's meta document is all that tells the two apart."""
    from .old_schema import downgrade

    feeder = Feeder(index_root, {})
    feeder.feed(message(1, "hello"))
    downgrade(feeder.projection)
    with pytest.raises(StoreError, match="rebuild it with chat-archive rebuild search"):
        feeder.search("hello")
    with pytest.raises(StoreError, match="rebuild it with chat-archive rebuild search"):
        SearchIndexProjection(feeder.location, heap_mb=20).position()
