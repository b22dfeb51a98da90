"""Searching the index: parse, scope, page, snippets, facets.

``SearchIndex.search`` enforces the caller's scope inside the tantivy query
itself (a room filter that is a Must clause, and MustNot retracted outside
compliance scope unless every match needs current text, which no retracted message has
in the index), so totals, pages and facet counts can only ever count what
the caller may see.

Readers live in other threads and processes than the indexer: they reload at
most every ``reload_interval`` seconds (a reload that finds nothing new is
cheap), and follow the ``current`` link when a rebuild swapped generations.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import tantivy
from tantivy import Query

from archive.errors import InvalidQueryError

from . import highlight, relevancepage
from .projection import open_tantivy, read_meta
from .cursor import PageCursor, read_cursor, write_cursor
from .hits import hits_of
from .plans import parsed, plan_for
from .results import FacetCount, Facets, Scope, SearchResults, Sort
from .schema import SCHEMA_VERSION, older_schema
from .storage import IndexLocation
from .storedlines import KeptLines, StoredLines
from .timepage import KnownTimes, WindowOrder, edge_unit, time_page

MAX_LIMIT = 500
# Relevance pages by offset, and tantivy allocates for offset + limit hits: paging stops this deep
# (a time sort pages by keyset, as deep as the results go).
MAX_RELEVANCE_DEPTH = 10_000
# Candidates per index segment: counts are exact unless a value outside a segment's top
# (10 x the facets asked for) is in the overall top; a bigger pool costs much more per search.
FACET_POOL = 10
# Totals a searcher remembers (queries; all are forgotten when it is replaced, or this many are held).
KNOWN_TOTALS = 1_024


class SearchIndex:
    """A reader of the live index generation; thread-safe."""

    def __init__(self, location: IndexLocation, *, reload_interval: float = 0.05):
        self.location = location
        self.reload_interval = reload_interval
        self._lock = threading.Lock()
        self._directory = None
        self._index: tantivy.Index | None = None
        self._searcher: tantivy.Searcher | None = None
        self._checked = 0.0
        self._position = 0
        self._committed: bytes | None = None
        self._edges: tuple[tantivy.Searcher | None, dict[bool, int | None]] = (None, {})
        self._orders: tuple[tantivy.Searcher | None, dict] = (None, {})
        self._totals: tuple[tantivy.Searcher | None, dict] = (None, {})
        # What searches learned of documents, for the searchers of one lineage (see ``_refresh``), and the
        # segment ids by ordinal that key it, of the searcher ``_refresh`` made last.
        self._learned: tuple[object, _Learned] = (None, _Learned())
        self._segments: tuple[tantivy.Searcher | None, tuple, _Learned] = (None, (), self._learned[1])

    # -- public ----------------------------------------------------------------------

    def search(
        self,
        text: str,
        scope: Scope,
        *,
        sort: Sort | str = Sort.RELEVANCE,
        limit: int = 20,
        cursor: str | None = None,
        facets: bool | None = None,
        facet_size: int = 10,
        now: datetime | None = None,
        exact_total: bool = False,
    ) -> SearchResults:
        """One page of the messages in ``scope`` that match ``text`` (the query language).

        ``facets``: count by room and sender over all matches; by default on the first
        page only (they are the same for every page).

        ``exact_total``: count every match. Without it a time-sorted first page found in a
        window of recent (early) times may report a lower bound, ``total_relation`` "gte" (a
        common word's newest page cost twice as much with the count); relevance pages, cursor
        pages, pages with facets, a first page (outside compliance scope) of a query whose every match
        holds a word of at most ``timepage.ORDERED_WHOLE`` documents and a total this searcher already
        counted are exact in any case.

        Raises ``InvalidQueryError`` (with ``position``) for a malformed query, an
        ``is:retracted`` outside compliance scope, a ``jid:`` without ``Scope.jids``, a
        bad limit or a foreign cursor; ``IndexUnusable`` (a ``StoreError``) if the index needs a rebuild.
        """
        sort = _sort(sort)
        facets = cursor is None if facets is None else facets
        # Facets visit every match anyway (counting them too costs at most as much again), and a bound
        # beside their counts would contradict them.
        exact_total = exact_total or facets
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidQueryError(f"limit must be between 1 and {MAX_LIMIT}")
        node = parsed(text, scope, now)
        check = zlib.crc32(f"{sort.value}\x00{text}".encode())
        after = read_cursor(cursor, check, MAX_RELEVANCE_DEPTH) if cursor else None
        searcher = self._refresh()
        empty = SearchResults(query=text, sort=sort, total=0, hits=[], facets=Facets() if facets else None)
        if searcher is None or (scope.rooms is not None and not scope.rooms):
            return empty
        plan = plan_for(text, node, scope, lambda local: _rooms_with_local(searcher, local))
        base = plan.base
        totals, asked = self._known_totals(searcher), (node, scope)
        # Facets visit every match: their counts make the total, which then is not counted again.
        counts, counted = _facets(searcher, base, facet_size) if facets else (None, None)
        segments, learned = self._learned_by(searcher)
        lines = StoredLines(searcher, learned.kept, segments)
        if sort is Sort.RELEVANCE:
            offset = after.offset if after else 0
            limit = max(1, min(limit, MAX_RELEVANCE_DEPTH - offset))
            window = relevancepage.MAX_TIE_RUN if plan.phrases else relevancepage.TIE_WINDOW
            page, total, more = relevancepage.relevance_page(searcher, base, limit, offset, lines, window, counted)
            more, exact = more and offset + limit < MAX_RELEVANCE_DEPTH, True
            next_cursor = PageCursor(check, offset=offset + limit) if more else None
        else:
            newest, edge, known = sort is Sort.NEWEST, self._edge_of(searcher), totals.get(asked, counted)
            most = _most(searcher, plan.stems) if after is None and known is None and not scope.compliance else None
            page, total, exact, more = time_page(
                searcher, base, limit, newest, after, edge, lines, known, exact_total, most,
                self._window_order_of(searcher, segments, learned.times),
            )
            next_cursor = PageCursor(check, ts=page[-1][1], key=page[-1][2]) if more else None
        if exact:
            totals[asked] = total
        hits = hits_of(page, lines, scope, highlight.marks_for(plan.highlights), sort)
        return SearchResults(
            query=text,
            sort=sort,
            total=total,
            total_relation="eq" if exact else "gte",
            hits=hits,
            next_cursor=write_cursor(next_cursor) if next_cursor else None,
            facets=counts,
            index_position=self._position,
        )

    def position(self) -> int:
        """The log position the live index has committed (0 before the first commit)."""
        self._refresh()
        return self._position

    def committed_at(self) -> datetime | None:
        """When the live generation last committed (its ``meta.json``, which every commit replaces); None
        before the first commit. An indexer catching up commits every few seconds."""
        directory = self.location.current()
        try:
            stamp = (directory / "meta.json").stat().st_mtime if directory is not None else None
        except OSError:
            return None
        return None if stamp is None else datetime.fromtimestamp(stamp, timezone.utc)

    def rooms(self) -> list[str]:
        """Every room (lowercased JID) with a message in the index."""
        searcher = self._refresh()
        return [term for term, _ in searcher.terms_with_prefix("room", "")] if searcher is not None else []

    # -- internals ---------------------------------------------------------------------

    def _refresh(self) -> tantivy.Searcher | None:
        with self._lock:
            now = time.monotonic()
            if self._index is None or now - self._checked >= self.reload_interval:
                self._checked = now
                current = self.location.current()
                # Read before the reload: a commit in between is then seen at the next check.
                committed = _committed(current)
                if current != self._directory or self._index is None:
                    # Remembered only once open: an unusable generation (another schema, a
                    # rebuild pending) raises on every use until it is replaced.
                    self._index = self._directory = self._searcher = None
                    self._index = open_tantivy(current) if current is not None else None
                    self._directory = current
                elif committed is not None and committed == self._committed:
                    # Nothing committed since the last reload, which would open every segment
                    # again (~0.2 ms CPU, ~1 ms holding the lock; 20 times a second).
                    return self._searcher
                else:
                    self._index.reload()
                self._committed = committed
                self._searcher = self._index.searcher() if self._index is not None else None
                self._position = 0
                if self._searcher is not None:
                    self._learn_segments(self._searcher, committed, _committed(current))
                    self._position, version = read_meta(self._searcher)
                    if version != SCHEMA_VERSION:
                        self._index = None
                        raise older_schema(current, version)
            return self._searcher

    def _edge_of(self, searcher: tantivy.Searcher):
        """``edge_unit`` of this searcher, remembered until the next searcher: the walk costs
        a few term-dictionary look-ups, and an anchor older than the searcher's newest
        document would hide the documents after it (so it is never taken from another)."""
        edges = self._held("_edges", searcher)

        def edge(newest: bool) -> int | None:
            if newest not in edges:
                edges[newest] = edge_unit(searcher, newest)
            return edges[newest]

        return edge

    def _window_order_of(self, searcher: tantivy.Searcher, segments: tuple, times: KnownTimes):
        """The ``WindowOrder`` of this searcher's edge, made at its second first page in that order: a searcher
        replaced after one search (a commit between every two) never pays for it (a read of the window, ~1.4 ms
        at 1M, as much as ~30 searches then save; where an earlier searcher of its lineage read it, only of
        the documents added since, about an ordered search), one that serves more saves an ordered search on each."""
        orders = self._held("_orders", searcher)

        def order(newest: bool) -> WindowOrder | None:
            if newest not in orders:
                orders[newest] = False  # seen once
            elif orders[newest] is False:
                window = WindowOrder.window(searcher, self._edge_of(searcher)(newest), newest)
                orders[newest] = WindowOrder(searcher, *window, segments, times) if window is not None else None
            return orders[newest] or None

        return order

    def _held(self, name: str, searcher: tantivy.Searcher) -> dict:
        """The dict that attribute ``name`` keeps for ``searcher`` only: a new one with every new searcher."""
        held, values = getattr(self, name)
        if held is not searcher:
            values = {}
            setattr(self, name, (searcher, values))
        return values

    def _learn_segments(self, searcher: tantivy.Searcher, before: bytes | None, after: bytes | None) -> None:
        """Key what searches learn by the new searcher's segment ids, from ``meta.json`` as read ``before`` and
        ``after`` its reload: the same both times, the searcher opened exactly the segments it lists, in its
        order (their ordinals), and the lineage (the generation: a rebuild's segments are others) goes on.
        Otherwise (a commit in between) the searcher learns apart, by ordinal, and starts a lineage of its own."""
        ids = _segment_ids(after) if before is not None and before == after else None
        if ids is not None and len(ids) != searcher.num_segments:
            ids = None
        lineage = self._directory if ids is not None else searcher
        held, learned = self._learned
        if held is None or held != lineage:
            learned = _Learned()
            self._learned = (lineage, learned)
        self._segments = (searcher, ids if ids is not None else tuple(range(searcher.num_segments)), learned)

    def _learned_by(self, searcher: tantivy.Searcher) -> tuple[tuple, _Learned]:
        """The segment ids by ordinal of ``searcher`` and what its lineage learned (apart, by ordinal, for a
        searcher another thread has replaced since)."""
        held, segments, learned = self._segments
        if held is not searcher:
            return tuple(range(searcher.num_segments)), _Learned()
        return segments, learned

    def forget_kept_lines(self) -> None:
        """Read every hit's line again, as a new searcher did before it kept the lines of the last: with
        ``forget_known_totals``, what a query's first search costs where no search read its hits' lines (a
        commit's new documents, or documents no search showed), not a repeat made of the lines it read before
        (``bench.search``)."""
        self._segments[2].kept = KeptLines()

    def forget_known_totals(self) -> None:
        """Count every query's total again, as after a reload: what a query's first time-sorted
        search on a commit costs (``bench.search`` measures that, not the known-total path)."""
        self._totals = (None, {})

    def _known_totals(self, searcher: tantivy.Searcher) -> dict:
        """Every match counted by this searcher, by query (syntax tree and scope): the same for
        every page and both sorts until a commit is reloaded (a new searcher). A relevance page
        counts in the pass that scores; a time-sorted page would count apart, visiting every
        match again (half of a common word's newest page at 1M, ~3.5 ms at 10M)."""
        held, totals = self._totals
        if held is not searcher or len(totals) >= KNOWN_TOTALS:
            totals = {}
            self._totals = (searcher, totals)
        return totals


class _Learned:
    """What a reader's searches learned of documents, by (segment id, document): their lines and their (ts, key)."""

    def __init__(self):
        self.kept = KeptLines()
        self.times = KnownTimes()


def _segment_ids(meta: bytes | None) -> tuple[str, ...] | None:
    """The segment ids ``meta.json`` lists, in its order, or None where it cannot be read."""
    try:
        return tuple(segment["segment_id"] for segment in json.loads(meta)["segments"])
    except (TypeError, ValueError, KeyError):
        return None


def _committed(directory: Path | None) -> bytes | None:
    """The generation's ``meta.json``: tantivy replaces it (atomically) on every commit, merges
    and deletes included, and a reload opens exactly the segments it lists."""
    if directory is None:
        return None
    try:
        return (directory / "meta.json").read_bytes()
    except OSError:
        return None


def _facets(searcher, base: Query, size: int) -> tuple[Facets, int]:
    """The facets, and the total: every match is a message in one room, counted in one of the rooms'
    buckets or in their ``sum_other_doc_count``."""
    def terms(field: str) -> dict:
        return {"terms": {"field": field, "size": size, "segment_size": max(size * FACET_POOL, 100)}}

    result = searcher.aggregate(base, {"rooms": terms("room"), "senders": terms("nick")})

    def counts(name: str) -> list[FacetCount]:
        return [FacetCount(bucket["key"], bucket["doc_count"]) for bucket in result[name]["buckets"]]

    rooms = result["rooms"]
    total = sum(bucket["doc_count"] for bucket in rooms["buckets"]) + rooms["sum_other_doc_count"]
    return Facets(rooms=counts("rooms"), senders=counts("senders")), total


def _most(searcher, stems: frozenset[str]) -> int | None:
    """An upper bound of a query's matches outside compliance scope, or None: the fewest documents
    holding a word every match holds (deleted ones too)."""
    return min((searcher.doc_freq("body", stem) for stem in stems), default=None)


def _rooms_with_local(searcher, local: str) -> list[str]:
    return [term for term, _ in searcher.terms_with_prefix("room", local + "@")]


def _sort(sort: Sort | str) -> Sort:
    try:
        return Sort(sort)
    except ValueError:
        raise InvalidQueryError(f"sort must be one of {', '.join(s.value for s in Sort)}, not {sort!r}") from None
