"""Micro-benchmarks of the hot paths (pytest-benchmark).

Run: ``.venv/bin/python -m pytest bench --benchmark-enable`` (not part of the
normal test run: pyproject's testpaths is ``tests`` and benchmarks are disabled
by default there). Compare runs with ``--benchmark-autosave`` and
``pytest-benchmark compare``.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

import msgspec
import pytest

from archive.application import open_event_store
from archive.codec import from_json, from_msgpack, idempotency_key, to_json, to_msgpack
from archive.events import MessagePosted
from bench.corpus import CorpusSpec, generate, query_set
from projections.follower import collection_paused
from ingest.roomview import Occupant, RoomView
from ingest.translate_message import translate_message
from ingest.xmlutil import RoomContext
from projections.rebuild import rebuild
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection
from projections.search.query import parse

SPEC = CorpusSpec.for_size("10k")
NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)
ROOM = "lobby@conference.localhost"


@pytest.fixture(scope="module")
def events():
    return list(generate(SPEC))


@pytest.fixture(scope="module")
def message(events):
    return next(e for e in events if type(e) is MessagePosted)


def _stanza() -> ET.Element:
    return ET.fromstring(
        f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/alice" id="client-1" xml:lang="en">'
        "<body>the build is green, merging the pull request now 🚀</body>"
        f'<stanza-id xmlns="urn:xmpp:sid:0" by="{ROOM}" id="Gx7aX9Qe1bT3kLmN"/>'
        '<origin-id xmlns="urn:xmpp:sid:0" id="origin-1"/>'
        '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="occ-a"/></message>'
    )


def test_translate_groupchat_message(benchmark):
    stanza, ctx = _stanza(), RoomContext(room=ROOM, own_nick="archive")
    view = RoomView(ROOM, occupants={"alice": Occupant("alice", "alice@localhost")})
    assert benchmark(translate_message, stanza, ctx, view, NOW)


def test_encode_msgpack(benchmark, message):
    benchmark(to_msgpack, message)


def test_decode_msgpack(benchmark, message):
    data = to_msgpack(message)
    assert benchmark(from_msgpack, data) == message


def test_encode_json(benchmark, message):
    benchmark(to_json, message)


def test_decode_json(benchmark, message):
    data = to_json(message)
    assert benchmark(from_json, data) == message


def test_idempotency_key(benchmark, message):
    benchmark(idempotency_key, message)


def test_append_batch_of_1000_sqlite(benchmark, tmp_path, events):
    store = open_event_store(f"sqlite:///{tmp_path}/events.sqlite")
    fresh = itertools.count()

    def batch():
        # New stanza-ids every round: a batch seen before would be dropped as duplicates.
        n = next(fresh)
        return ([msgspec.structs.replace(e, stanza_id=f"{n}-{i}") if type(e) is MessagePosted else e
                 for i, e in enumerate(events[1000:2000])],), {}

    benchmark.pedantic(store.append, setup=batch, rounds=20)
    store.close()


@pytest.fixture(scope="module")
def search_index(tmp_path_factory, events):
    directory = tmp_path_factory.mktemp("bench-index")
    store = open_event_store(f"sqlite:///{directory}/events.sqlite")
    store.append(events)
    location = IndexLocation(directory / "index")
    rebuild(store, [SearchIndexProjection(location)])
    store.close()
    return SearchIndex(location)


def test_index_batch_of_1000(benchmark, tmp_path, events):
    from archive.events import Recorded

    records = [Recorded(i + 1, e) for i, e in enumerate(events[:1000])]
    rounds = itertools.count()

    def setup():
        location = IndexLocation(tmp_path / f"index-{next(rounds)}")
        return (SearchIndexProjection(location, heap_mb=64),), {}

    def index(projection):
        with collection_paused():  # as a follower applies and commits a page
            projection.apply(records)
            projection.commit(records[-1].position)

    benchmark.pedantic(index, setup=setup, rounds=5)


def test_query_parse(benchmark):
    benchmark(parse, '"pull request" deploy* from:alice -spam after:2024-01-01 room:dev@conference.localhost')


@pytest.mark.parametrize("kind", ["common word", "two words AND", "rare word", "phrase"])
def test_search_10k(benchmark, search_index, kind):
    text = query_set(SPEC).classes[kind][0]
    benchmark(search_index.search, text, Scope(rooms=None, compliance=False), limit=20)
