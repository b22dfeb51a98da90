"""Each query form on a fixed corpus: hand-written expectations, and the oracle for all scopes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive import events as ev
from archive.errors import InvalidQueryError
from archive.events import Recorded
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection
from projections.search.query import parse
from tests.factories import T0, make, message
from tests.projections.search.oracle import Oracle, time_order

LOBBY, DEV = "lobby@conference.localhost", "dev@conference.localhost"
NOW = T0 + timedelta(days=10)

EVENTS = [
    message(0, "the deploy is running now", nick="alice", room=LOBBY, message_id="m1", jid="alice@localhost/a"),
    message(3600, "Deployed to Zürich, naïve test", nick="Bob", room=DEV),
    message(86_400, "kubernetes runner crashed", nick="carol", room=DEV, message_id="m3"),
    message(86_400, "lazy foxes don't run", nick="alice", room=LOBBY),
    message(2 * 86_400, "send me an e-mail about the release notes", nick="dave", room=LOBBY),
    message(2 * 86_400 + 5, "release the notes", nick="bob", room=DEV),
    make(ev.MessageCorrected, 2 * 86_400 + 60, nick="carol", room=DEV, replaces_id="m3", body="kubernetes pod crashed"),
    message(3 * 86_400, "run it again 🙂", nick="alice", room=DEV, stanza_id="gone"),
    make(ev.MessageRetracted, 3 * 86_400 + 1, room=DEV, target_id="gone", moderated=True),
]

# query -> positions of the expected messages (ordinary scope, every room), oldest first
EXPECTED = {
    "deploy": [1, 2],  # stems: deployed
    "DEPLOYING": [1, 2],
    "run": [1, 4],  # running, run; the retracted "run it again" is not found
    "runn*": [],  # stems starting "runn": "runner" was corrected away; "running" is "run"
    "run*": [1, 4],  # running, run
    "kubernets~": [3],
    "kubernetez~1": [],  # fuzzy compares stems: "kubernetez" is two edits from "kubernet"
    "kubernetez~2": [3],
    "kbuernetes~": [3],  # a transposition is one edit
    "kubernxtez~": [],
    "kubernxtez~2": [],
    "kubernxtes~2": [3],
    '"release notes"': [5],
    '"notes release"': [],
    "release notes": [5, 6],
    "release -notes": [],
    "release NOT e-mail": [6],
    "e-mail": [5],
    "email": [],
    "don't": [4],
    "zurich": [],
    "zürich": [2],
    "naïve": [2],
    "crashed OR foxes": [3, 4],
    "crashed foxes OR notes": [],
    "(crashed OR foxes) lazy": [4],
    "pod": [3],
    "runner": [],  # corrected away
    "room:dev": [2, 3, 6],
    "room:DEV@conference.localhost releas*": [6],
    "lazy*": [4],  # stem "lazi"
    "deploying*": [1, 2],  # stem "deploy"
    "fox~": [4],  # stem "fox" of foxes
    "crash*": [3],
    "from:ALICE": [1, 4],
    "from:bob": [2, 6],
    "jid:alice@localhost": [1],
    "after:2024-05-02": [3, 4, 5, 6],
    "before:2024-05-02": [1, 2],
    "on:2024-05-03": [5, 6],
    "after:2024-05-01T13:00:00Z before:2024-05-02T12:00:01Z": [2, 3, 4],
    "is:edited": [3],
    "-room:dev -from:alice": [5],
    "": [1, 2, 3, 4, 5, 6],
}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    records = [Recorded(i + 1, event) for i, event in enumerate(EVENTS)]
    location = IndexLocation(tmp_path_factory.mktemp("forms") / "index")
    projection = SearchIndexProjection(location, heap_mb=20)
    projection.apply(records[:5])
    projection.commit(5)
    projection.apply(records[5:])
    projection.commit(len(records))
    projection.close()
    oracle = Oracle()
    oracle.replay(records)
    return SearchIndex(location, reload_interval=0), oracle


@pytest.mark.parametrize("text", list(EXPECTED))
def test_query_form(searched, text):
    index, oracle = searched
    got = index.search(text, Scope(rooms=None, jids=True), sort="oldest", limit=50, now=NOW)
    assert [h.position for h in got.hits] == EXPECTED[text]
    node = parse(text, now=NOW)
    for scope in (Scope(rooms=None, jids=True), Scope(rooms=None, compliance=True, jids=True), Scope(rooms=frozenset({DEV}), jids=True)):
        expected = time_order(oracle.search(node, rooms=scope.rooms, compliance=scope.compliance), False)
        got = index.search(text, scope, sort="oldest", limit=50, now=NOW)
        assert [h.position for h in got.hits] == expected, scope


@pytest.mark.parametrize("text", ["🙂", "!!!", "-🙂", "🙂 OR ..."])
def test_a_query_with_no_word_to_search_for_is_refused(searched, text):
    """Emoji and lone punctuation are ignored among words; alone, they asked for nothing and found everything."""
    index, _ = searched
    with pytest.raises(InvalidQueryError, match="no word to search for"):
        index.search(text, Scope(rooms=None, jids=True), now=NOW)


def test_compliance_scope_finds_earlier_versions_and_retracted(searched):
    index, _ = searched
    compliance = Scope(rooms=None, compliance=True)
    [hit] = index.search("runner", compliance).hits
    assert (hit.position, hit.body, hit.earlier_versions) == (3, "kubernetes pod crashed", ["kubernetes runner crashed"])
    assert hit.snippet == "kubernetes <mark>runner</mark> crashed"
    assert [(h.position, h.retracted) for h in index.search("again", compliance).hits] == [(8, True)]


def test_snippets_mark_what_matched(searched):
    index, _ = searched
    [hit] = index.search("run* from:alice room:lobby deploy", Scope(rooms=None)).hits
    assert hit.snippet == "the <mark>deploy</mark> is <mark>running</mark> now"
    [hit] = index.search('"release notes"', Scope(rooms=None)).hits
    assert hit.snippet == "send me an e-mail about the <mark>release</mark> <mark>notes</mark>"
