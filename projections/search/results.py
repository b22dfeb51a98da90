"""What a search takes and returns: msgspec Structs, served as JSON by the API."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

import msgspec


class Sort(str, enum.Enum):
    RELEVANCE = "relevance"  # BM25, best first
    NEWEST = "newest"  # occurred_at, newest first
    OLDEST = "oldest"


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """Whose search this is. ``rooms``: the room JIDs the caller may see, or None for
    every room (administrators, compliance officers); ``compliance``: also find
    retracted messages and earlier versions of corrected ones (``is:retracted``);
    ``jids``: may filter by real JID."""

    rooms: frozenset[str] | None
    compliance: bool = False
    jids: bool = False
    """May search by real JID (``jid:``): only callers allowed to see real JIDs."""


class Hit(msgspec.Struct, kw_only=True):
    position: int
    """Log position of the original message: open the transcript around it."""
    room: str
    nick: str
    jid: str | None = None
    time: datetime
    body: str
    """Current text (in compliance scope also of a retracted message)."""
    snippet: str
    """HTML: the text, escaped, trimmed around the first match, matches in <mark>."""
    thread: str | None = None
    capture: str
    edited: bool = False
    retracted: bool = False
    """Only ever true in compliance scope."""
    earlier_versions: list[str] = []
    """Texts before corrections, oldest first; compliance scope only."""
    score: float | None = None
    """BM25 score when sorted by relevance."""


class FacetCount(msgspec.Struct):
    value: str
    count: int


class Facets(msgspec.Struct):
    rooms: list[FacetCount] = []
    senders: list[FacetCount] = []


class SearchResults(msgspec.Struct, kw_only=True):
    query: str
    sort: Sort
    total: int
    """Every match in scope, not just this page; a lower bound where ``total_relation`` is "gte"."""
    total_relation: Literal["eq", "gte"] = "eq"
    """"eq": ``total`` is exact; "gte": there are at least ``total`` matches (a time-sorted first
    page that stopped counting at the window that held it; ask ``exact_total``, or facets, for the count)."""
    hits: list[Hit]
    next_cursor: str | None = None
    """Pass back as ``cursor`` for the next page; None on the last page."""
    facets: Facets | None = None
    """Counts over all matches (not just this page), most frequent first; None when not asked
    (by default only the first page, without a cursor, has them)."""
    index_position: int = 0
    """The log position the index had reached when searched."""
