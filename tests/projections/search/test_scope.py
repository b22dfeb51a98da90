"""Access scope is part of the query: nothing outside it is returned, counted or faceted."""

from __future__ import annotations

import pytest

from archive import events as ev
from archive.errors import InvalidQueryError
from archive.events import Recorded
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection
from tests.factories import make, message

PUBLIC = "public@conference.localhost"
SECRET = "secret@conference.localhost"


@pytest.fixture
def index(index_root):
    events = [
        message(1, "launch plans for friday", nick="ann", room=PUBLIC, stanza_id="p1"),
        message(2, "launch codes are 1234", nick="spy", room=SECRET, stanza_id="s1"),
        message(3, "launch codes again", nick="spy", room=SECRET, stanza_id="s2"),
        message(4, "oops launch codes pasted here", nick="bob", room=PUBLIC, stanza_id="p2"),
        make(ev.MessageRetracted, 5, room=PUBLIC, target_id="p2", moderated=True),
        make(ev.MessageRetracted, 6, room=PUBLIC, target_id="not-seen-yet"),  # an awaiting retraction: a meta document
    ]
    location = IndexLocation(index_root / "index")
    projection = SearchIndexProjection(location, heap_mb=20)
    projection.apply([Recorded(i + 1, e) for i, e in enumerate(events)])
    projection.commit(len(events))
    projection.close()
    return SearchIndex(location, reload_interval=0)


def test_other_rooms_are_neither_returned_nor_counted_nor_faceted(index):
    public = Scope(rooms=frozenset({PUBLIC}))
    results = index.search("launch", public, facet_size=100)
    assert [h.position for h in results.hits] == [1]
    assert results.total == 1
    assert [(f.value, f.count) for f in results.facets.rooms] == [(PUBLIC, 1)]
    assert [(f.value, f.count) for f in results.facets.senders] == [("ann", 1)]
    for text in ("codes", "from:spy", f"room:{SECRET}", "room:secret", f"room:{SECRET} OR launch", "-friday"):
        results = index.search(text, public, facet_size=100)
        assert all(h.room == PUBLIC for h in results.hits), text
        assert results.total == len(results.hits), text
        assert {f.value for f in results.facets.rooms} <= {PUBLIC}, text
        assert "spy" not in {f.value for f in results.facets.senders}, text


def test_an_empty_room_set_sees_nothing(index):
    results = index.search("", Scope(rooms=frozenset()))
    assert (results.total, results.hits, results.facets.rooms) == (0, [], [])


def test_retracted_messages_only_in_compliance_scope_and_marked(index):
    ordinary = index.search("codes", Scope(rooms=None), facet_size=100)
    assert sorted(h.position for h in ordinary.hits) == [2, 3]
    assert "bob" not in {f.value for f in ordinary.facets.senders}
    compliance = index.search("codes", Scope(rooms=None, compliance=True), sort="newest")
    assert [(h.position, h.retracted) for h in compliance.hits] == [(4, True), (3, False), (2, False)]
    assert index.search("is:retracted", Scope(rooms=None, compliance=True)).total == 1


def test_is_retracted_outside_compliance_scope_is_refused(index):
    with pytest.raises(InvalidQueryError, match="compliance") as caught:
        index.search("launch is:retracted", Scope(rooms=frozenset({PUBLIC})))
    assert caught.value.position == 7


def test_scope_rooms_are_compared_case_insensitively(index):
    assert index.search("launch", Scope(rooms=frozenset({PUBLIC.upper()}))).total == 1


def test_large_room_sets_are_enforced_alike(index):
    many = frozenset({PUBLIC} | {f"room{i}@conference.localhost" for i in range(40)})
    results = index.search("launch", Scope(rooms=many), facet_size=100)
    assert [h.position for h in results.hits] == [1]
    assert [(f.value, f.count) for f in results.facets.rooms] == [(PUBLIC, 1)]


def test_searching_by_real_jid_needs_the_right_to_see_jids(index_root):
    location = IndexLocation(index_root / "jids")
    projection = SearchIndexProjection(location, heap_mb=20)
    projection.apply([Recorded(1, message(1, "hello", nick="anon", jid="boss@localhost/desk"))])
    projection.commit(1)
    projection.close()
    index = SearchIndex(location, reload_interval=0)
    with pytest.raises(InvalidQueryError, match="permission to see real JIDs") as caught:
        index.search("hello jid:boss@localhost", Scope(rooms=None))
    assert caught.value.position == 6
    assert index.search("hello jid:boss@localhost", Scope(rooms=None, jids=True)).total == 1


@pytest.mark.parametrize("compliance", [False, True])
@pytest.mark.parametrize(
    "text", ["", "launch", "-friday", "NOT codes", "launch OR -friday", "from:ann", "-from:ann", "is:edited", "-is:edited"]
)
def test_the_index_s_own_documents_never_match(index, text, compliance):
    """Only negations reach the position and awaiting-retraction documents (they hold nothing else), and
    they are excluded there; plain field queries go without the exclusion clauses."""
    results = index.search(text, Scope(rooms=None, compliance=compliance), limit=50)
    messages = {1, 2, 3, 4} if compliance else {1, 2, 3}
    assert {hit.position for hit in results.hits} <= messages, text
    assert results.total == len(results.hits), text


@pytest.mark.parametrize("text", [
    "oops", "oops from:bob", "pasted OR from:bob", "from:bob", "from:bob -friday", f"room:{PUBLIC} -friday",
    "-friday", "pasted OR -friday", "oop*", "pastd~", '"codes pasted"', "(oops OR launch) from:bob", "is:edited OR oops",
])  # fmt: skip
def test_a_retracted_message_is_found_by_no_query_outside_compliance_scope(index, text):
    assert 4 not in {h.position for h in index.search(text, Scope(rooms=None), limit=100).hits}
    assert 4 not in {h.position for h in index.search(text, Scope(rooms=frozenset({PUBLIC})), limit=100).hits}


@pytest.mark.parametrize("text", ["oops", "oops from:bob", "pasted OR from:bob", "oop*", "pastd~", '"codes pasted"'])
def test_a_retracted_message_is_found_by_its_text_in_compliance_scope(index, text):
    assert 4 in {h.position for h in index.search(text, Scope(rooms=None, compliance=True), limit=100).hits}
