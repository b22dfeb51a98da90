"""Bounded work per query, whatever the entry point (API, pages, CLI): query length, terms, expanding
terms and nesting are capped in the parser; a cursor is bounds-checked; relevance paging stops at a
documented depth."""

from __future__ import annotations

import base64
import zlib

import msgspec
import pytest

from archive.errors import InvalidQueryError
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection
from projections.search.query import MAX_EXPANDING_TERMS, MAX_NESTING, MAX_QUERY_CHARS, MAX_TERMS, parse
from projections.search.searcher import MAX_RELEVANCE_DEPTH


def test_long_queries_are_refused():
    parse("a" * MAX_QUERY_CHARS)
    with pytest.raises(InvalidQueryError):
        parse("a" * (MAX_QUERY_CHARS + 1))


def test_too_many_terms_are_refused():
    parse(" ".join(["w"] * MAX_TERMS))
    with pytest.raises(InvalidQueryError, match="terms"):
        parse(" ".join(["w"] * (MAX_TERMS + 1)))


@pytest.mark.parametrize("term", ["abc~", "abc~2", "ab*"])
def test_too_many_expanding_terms_are_refused(term):
    parse(" ".join([term] * MAX_EXPANDING_TERMS))
    with pytest.raises(InvalidQueryError, match="prefix or fuzzy"):
        parse(" OR ".join([term] * (MAX_EXPANDING_TERMS + 1)))


@pytest.mark.parametrize("deep", [
    "(" * 2000 + "a" + ")" * 2000,
    "NOT " * 1000 + "a",
    "-(" * 1000 + "a" + ")" * 1000,
])  # fmt: skip
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(deep):
    with pytest.raises(InvalidQueryError, match="nest"):
        parse(deep)


def test_nesting_within_the_limit_parses():
    depth = MAX_NESTING - 1
    parse("(" * depth + "a" + ")" * depth)


def forged(q: str, sort: str = "relevance", **fields) -> str:
    state = {"ts": 0, "key": 0, "offset": 0, **fields}
    raw = msgspec.msgpack.encode([zlib.crc32(f"{sort}\x00{q}".encode()), state["ts"], state["key"], state["offset"]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def index(index_root):
    location = IndexLocation(index_root / "index")
    SearchIndexProjection(location).close()
    return SearchIndex(location, reload_interval=0)


@pytest.mark.parametrize("sort,fields", [
    ("relevance", {"offset": 2**32}),
    ("relevance", {"offset": MAX_RELEVANCE_DEPTH}),
    ("newest", {"key": -1}),
    ("oldest", {"ts": 2**63}),
    ("oldest", {"key": 2**64 - 1}),
])  # fmt: skip
def test_cursors_out_of_range_are_refused(index, sort, fields):
    with pytest.raises(InvalidQueryError, match="out of range"):
        index.search("hello", Scope(rooms=None, compliance=True), sort=sort, cursor=forged("hello", sort, **fields))
