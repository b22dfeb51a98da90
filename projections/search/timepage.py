"""Pages sorted by time (newest or oldest first), by keyset on (ts, key).

Ordering every match by ``ts`` visits them all and keeps a heap on the column:
at 1M a common word's ordered search cost about as much again as counting its
matches. So the page is searched in a window of time buckets (``span``) next
to its anchor (the index's newest or oldest bucket, or the cursor's), widened a
level at a time, and in the whole index only when even the coarsest window
holds too few; the total is then a count alone. Every match outside a window
lies beyond every match in it in the sort order, so a window that holds a page
and one more gives exactly the full sort's page. A first page of a query whose
every match holds a rare word (``ORDERED_WHOLE``) skips the windows: they would
mostly hold too few, and ordering its few matches whole costs less.

Counting every match of a common word cost more than the rest of its newest
page (at 1M 'just', 37k matches: ~0.45 of ~0.8 ms), and SQLite FTS5's
``ORDER BY rowid DESC LIMIT n`` counts nothing. So a first page found in a
window may report the matches counted in that window instead (``exact=False``):
a true lower bound, labelled as one, never a guess. The caller asks for the
exact count when it needs it.
"""

from __future__ import annotations

import functools
from operator import itemgetter

from tantivy import FieldType, Occur, Order, Query

from .schema import SCHEMA, SPAN_LEVELS, span_term, span_unit
from .storedlines import StoredLines, where_of

# Matches this few (estimated from the finest window) are ordered whole and counted in the
# same pass: searched again in a coarser window (each window counted in its ordering pass too),
# they cost more (at 1M with 2,000 here: 1,152 matches of two words +12%, 6,816 of a word in a room +10%).
WINDOWED_FROM = 10_000
# Keys of this many hits or fewer are read from their stored lines (~1.5 us each, and none for a hit
# the page shows, whose line is read anyway): a read of the column opens every segment's column,
# ~35-50 us at 1M however few the values.
FEW_KEYS = 16
# A window is searched when it is expected (its documents x the share of all documents that
# match) to hold this many pages: too few, and the next level is searched too; a level too
# coarse costs more (at 1M a common word's newest page: 0.46 ms (1 page), 0.51 (2), 0.52 (4)
# without the hits, 0.97 ordered whole; a 19-hour window for a word whose 71-minute one held the page 0.2 ms more).
WINDOW_PAGES = 2
# A first page of at most this many matches (bounded by ``time_page``'s ``most``) is ordered whole, counted
# in the same pass, without a window: its finest window mostly holds too few, and ordered for nothing it costs
# a whole ordered search (the column opens; ~50 us of a rare word's ~300 at 1M), while ordering this many
# more costs ~25 us (~25 ns a match).
ORDERED_WHOLE = 1_000
# Hits a run of equal times at a page's end is fetched with at once: counted in the same pass, and
# fetched again only when longer (a run is the matches of one second).
TIE_RUN = 64
# A first page's finest window at the index's edge is ordered here, from the (ts, key) of its documents read once
# (``WindowOrder``), where it holds at most this many documents (at 1M ~1,900: read in ~1 ms) ...
ORDERED_WINDOW_DOCUMENTS = 8_192
# ... and the query is expected to match (and matches) at most this many of them: an unordered search hands
# them all over (~26 us at 1M for ~75 where the ordered one took ~75 us), and Python orders them.
ORDERED_WINDOW_HITS = 256


def time_page(
    searcher, base: Query, limit: int, newest: bool, after, edge, lines: StoredLines, total: int | None = None,
    exact: bool = True, most: int | None = None, window_order=None,
) -> tuple[list, int, bool, bool]:
    """(None, ts, key, address) rows, the total, whether it is exact (else a lower bound),
    whether more follow. ``key`` is None where no equal time needed it, except in the last
    row when more follow (the cursor's).

    ``after``: the cursor (ts, key) or None; ``edge(newest)``: the index's newest (oldest)
    finest bucket (``span_unit``), None when there is none; ``total``: the total when it is
    known (it then chooses the window, and nothing is counted); ``lines``: the search's stored
    lines; ``exact``: count every match even where a first page could stop at a window's
    (a cursor's page counts them in any case: the count chooses its window); ``most``: an upper
    bound of the matches where one is known, or None.

    tantivy orders by one fast field and breaks ties its own way, so when the
    page boundary falls inside a run of equal times, that run is fetched whole
    and ordered by key here.
    """
    if total == 0 or (after is None and most == 0):
        # Nothing matches (counted on this searcher, or a word every match holds is in no document): a window,
        # even skipped, and the whole order would each open the time column for nothing (~35 us at 1M).
        return [], 0, True, False
    query = base if after is None else _and(base, _beyond(after.ts, after.key, newest))
    anchor = span_unit(after.ts) if after is not None else edge(newest)
    if after is None and total is None and most is not None and most <= ORDERED_WHOLE:
        anchor = None
    # A cursor's page is counted apart in any case: first, so that it chooses the window.
    hits = bound = None
    if total is None and after is not None:
        total = _count(searcher, base)
    if anchor is not None:
        # The edge's window only: a cursor's is another.
        ordered = _by_window_order(window_order, newest, most) if after is None else None
        query, hits, total, bound = _windowed(searcher, base, query, limit, newest, anchor, total, exact, ordered)
    if hits is None:
        # A first page's few matches: ordered whole, counted in the same pass.
        hits, found = _ordered(searcher, query, limit + 1, newest, count=total is None and after is None)
        total = found if found is not None else total
    counted = total is not None or bound is None
    if total is None:
        total = _count(searcher, base) if bound is None else bound
    candidates = hits[:limit]
    if len(hits) > limit and hits[limit][0] == hits[limit - 1][0]:
        boundary = hits[limit - 1][0]
        ties = _all_hits(searcher, _and(query, _ts_range(boundary, boundary)))
        candidates = [hit for hit in hits if hit[0] != boundary] + [(boundary, address) for _, address in ties]
    more = len(hits) > limit
    if any(a[0] == b[0] for a, b in zip(candidates, candidates[1:])):
        keys = keys_of(searcher, [address for _, address in candidates], lines, shown=limit)
        rows = sorted(
            ((None, ts, key, address) for (ts, address), key in zip(candidates, keys)),
            key=lambda row: (row[1], row[2]),
            reverse=newest,
        )
        return rows[:limit], total, counted, more
    # No equal times: tantivy's order is the page's, and only the cursor needs a key.
    rows = [(None, ts, None, address) for ts, address in candidates]
    if more:
        _, ts, _, address = rows[-1]
        rows[-1] = (None, ts, lines(address).line.id, address)
    return rows, total, counted, more


def keys_of(searcher, addresses: list, lines: StoredLines, shown: int = 0) -> list[int]:
    """The keys (log positions) of hits, which order equal times and scores; ``shown``: how many
    of them the page will show (their lines are read in any case)."""
    if len(addresses) - shown <= FEW_KEYS:
        return [lines(address).line.id for address in addresses]
    return searcher.fast_field_values("key", addresses)


def _windowed(searcher, base: Query, query: Query, limit: int, newest: bool, anchor: int, total: int | None,
              exact: bool = True, ordered_finest=None):
    """(the query that found them, the first limit + 1 hits within the smallest window that
    holds that many or None, the total where it was counted or None, a lower bound of the
    total where only a window's matches were counted (not ``exact``) or None).

    A level's window is the anchor's bucket and the one before it in the sort order
    (the anchor may lie at its bucket's start): everything from the earlier one's start
    up to the anchor. Buckets hold documents of any log position (a backfill's old
    times go in old buckets), so the order of writing does not matter.

    Without a total (a first page), each window's matches are counted in the pass that orders
    them (a window without the page costs the ordering for nothing: every segment's ``ts`` column is
    opened, even for no match, and an open reads the column's block index: ~50 us at 1M, growing with
    the documents), and the finest one's estimate all the matches: a few are ordered whole, and counted in the same
    pass, by the caller; only many are counted apart and looked for in coarser windows,
    each expected to hold ``WINDOW_PAGES`` pages; not ``exact``, the coarser windows are
    counted in turn instead, and the matches of the window that holds the page bound the total
    where they estimate at least ``WINDOWED_FROM`` (else the caller counts them all).

    ``ordered_finest(query, need)``: the finest window's first ``need`` hits and how many match, or None,
    without an ordered search (``WindowOrder.first``), or None."""
    need, everything, bound = limit + 1, searcher.num_docs, None
    for level in SPAN_LEVELS:
        terms = _window_terms(anchor, level, newest)
        documents = sum(searcher.doc_freq("span", term) for term in terms)
        if total is not None and total * documents < WINDOW_PAGES * need * everything:
            continue
        windowed = _and(query, _span_query(terms))
        # Counted (where no total is known) and ordered in one pass: the window mostly holds the page
        # (a common word's finest one at 1M), and a second pass cost as much again in per-segment set-up.
        page = ordered_finest(windowed, need) if ordered_finest is not None and level == SPAN_LEVELS[0] else None
        if page is not None:
            hits, found = page[0], page[1] if total is None else None
        else:
            hits, found = _ordered(searcher, windowed, need, newest, count=total is None)
        if found is not None:
            if found < need:
                if (found + 1) * everything < WINDOWED_FROM * max(documents, 1):
                    return query, None, None, None
                if exact:
                    total = _count(searcher, base)
                continue
            # A first page's window: each of its matches is one of base's. Only where the window's
            # share says many match: fewer cost little to count (and "at least 3" of 3 says less).
            if not exact and found * everything >= WINDOWED_FROM * max(documents, 1):
                bound = found
        if len(hits) >= need:
            return windowed, hits, total, bound
    return query, None, total, None


def _by_window_order(window_order, newest: bool, most: int | None):
    """``_windowed``'s ``ordered_finest`` from the searcher's ``WindowOrder``, or None: where no bound says the
    finest window holds few matches (a query without a word every match holds), an unordered search that
    found too many would be a search for nothing."""
    if window_order is None or most is None:
        return None
    order = window_order(newest)
    if order is None or most * order.documents > ORDERED_WINDOW_HITS * order.everything:
        return None
    return lambda query, need: order.first(query, need, newest)


# (ts, key) of documents a reader keeps (``KnownTimes``), across its searchers: at most this many.
KNOWN_TIMES = 4 * ORDERED_WINDOW_DOCUMENTS


class KnownTimes:
    """The (ts, key) of documents by (segment id, document), read by a reader's window orders and kept for
    its later searchers: a segment's documents never change, so a commit (a new searcher, about every second
    under live traffic) need not read its edge's window again (~1.2 ms CPU at 1M): only the documents added
    since (a commit's new messages, by key), and those of documents written again or merged into a new segment
    as searches find them. Cleared when full."""

    def __init__(self):
        self.rows: dict[tuple, tuple[int, int]] = {}
        self.read: set[str] = set()  # span terms whose documents were all read (in the segments then searched)
        self.last_key = -1  # the highest key read

    def clear(self) -> None:
        self.rows.clear()
        self.read.clear()
        self.last_key = -1

    def keep(self, addresses: list, segments: tuple, rows) -> None:
        if len(self.rows) + len(addresses) > KNOWN_TIMES:
            self.clear()
        for address, row in zip(addresses, rows):
            segment, doc = where_of(address)
            self.rows[(segments[segment], doc)] = row


class WindowOrder:
    """The (ts, key) of every document in a searcher's finest window at its newest (oldest) edge, by address.

    An ordered search reads every segment's ``ts`` column, and opening a column rebuilds its block index:
    a cost of the index's size, not of the matches (~40 us at 1M, ~0.4 ms at 10M, most of a newest page's
    search). Every first page of every query on the searcher starts in this window: read once (an ordered
    search and a read of ``key``) into the reader's ``KnownTimes`` (where an earlier searcher read it, only
    the documents of keys above those it read), its pages are found by an unordered search and ordered here.
    ``segments``: the searcher's segment ids by ordinal.
    """

    def __init__(self, searcher, terms: tuple[str, str], documents: int, segments: tuple, known: KnownTimes):
        self.documents, self.everything = documents, searcher.num_docs
        self._searcher, self._segments, self._known = searcher, segments, known
        if len(known.rows) + documents > KNOWN_TIMES:
            known.clear()
        query = _span_query(terms)
        if known.read.issuperset(terms):
            query = _and(query, Query.range_query(SCHEMA, "key", FieldType.Unsigned, lower_bound=known.last_key,
                                                  include_lower=False))
        hits = searcher.search(query, max(documents, 1), count=False, order_by_field="ts").hits
        addresses = [address for _, address in hits]
        keys = searcher.fast_field_values("key", addresses)
        known.keep(addresses, segments, zip((ts for ts, _ in hits), keys))
        known.read.update(terms)
        known.last_key = max(known.last_key, max(keys, default=-1))

    @staticmethod
    def window(searcher, anchor: int | None, newest: bool) -> tuple[tuple[str, str], int] | None:
        """The finest window's terms and documents, or None where there is no window or it holds more than
        ``ORDERED_WINDOW_DOCUMENTS``."""
        if anchor is None:
            return None
        terms = _window_terms(anchor, SPAN_LEVELS[0], newest)
        documents = sum(searcher.doc_freq("span", term) for term in terms)
        return (terms, documents) if documents <= ORDERED_WINDOW_DOCUMENTS else None

    def first(self, query: Query, need: int, newest: bool) -> tuple[list, int] | None:
        """The first ``need`` (ts, address) hits of ``query`` (within this window) in the time order (ties by
        key) and how many match, or None where more than ``ORDERED_WINDOW_HITS`` match."""
        result = self._searcher.search(Query.const_score_query(query, 1.0), ORDERED_WINDOW_HITS, count=True)
        if result.count > ORDERED_WINDOW_HITS:
            return None
        rows, segments = self._known.rows, self._segments
        found, unknown = [], []
        for _, address in result.hits:
            segment, doc = where_of(address)
            row = rows.get((segments[segment], doc))
            if row is None:
                unknown.append(address)
            else:
                found.append((row, address))
        if unknown:
            # Documents of a segment newer than the window's read (or forgotten): read now, kept for later searches.
            read = list(zip(self._searcher.fast_field_values("ts", unknown), self._searcher.fast_field_values("key", unknown)))
            self._known.keep(unknown, segments, read)
            found += zip(read, unknown)
        found.sort(key=itemgetter(0), reverse=newest)
        return [(ts, address) for (ts, _), address in found[:need]], result.count


# A searcher's first pages search the windows at its edge again and again: their terms and queries are
# made once (the edge moves at most every 71.6 minutes), not for every search.
@functools.lru_cache(maxsize=64)
def _span_query(terms: tuple[str, ...]) -> Query:
    return Query.boolean_query([(Occur.Should, Query.term_query(SCHEMA, "span", t)) for t in terms])


@functools.lru_cache(maxsize=64)
def _window_terms(anchor: int, level: int, newest: bool) -> tuple[str, str]:
    step = 16 ** (8 - level)
    return span_term(anchor, level), span_term(anchor + (-step if newest else step), level)


def _count(searcher, base: Query) -> int:
    return searcher.search(Query.const_score_query(base, 1.0), 1, count=True).count


def _ordered(searcher, query: Query, limit: int, newest: bool, count: bool = False) -> tuple[list, int | None]:
    """The first ``limit`` hits in the time order, and (``count``) how many match, counted in the same pass."""
    result = searcher.search(query, limit, count=count, order_by_field="ts", order=_order(newest))
    return result.hits, result.count if count else None


def _all_hits(searcher, query: Query) -> list:
    """Every hit of a query expected to match few (a run of equal times): one search where
    ``TIE_RUN`` hold them all, a second (as many as the first counted) where they do not."""
    result = searcher.search(query, TIE_RUN, count=True)
    return result.hits if result.count <= TIE_RUN else searcher.search(query, result.count).hits


def _order(newest: bool) -> Order:
    return Order.Desc if newest else Order.Asc


def edge_unit(searcher, newest: bool) -> int | None:
    """The newest (oldest) finest bucket with a document, found by walking down the term
    dictionary from the coarsest level (each level lists at most 16 children). Buckets of
    deleted documents count: an anchor past the last match only widens a window."""
    prefix, term = str(SPAN_LEVELS[-1]), None
    for level in reversed(SPAN_LEVELS):
        terms = [found for found, _ in searcher.terms_with_prefix("span", prefix)]
        if not terms:
            return None
        term = max(terms) if newest else min(terms)
        prefix = f"{level + 1}{term[1:]}"
    return int(term[1:], 16)


def _beyond(ts: int, key: int, newest: bool) -> Query:
    """Rows after (ts, key) in the sort order."""
    if newest:
        earlier = Query.range_query(SCHEMA, "ts", FieldType.Integer, upper_bound=ts, include_upper=False)
        same = _and(_ts_range(ts, ts), Query.range_query(SCHEMA, "key", FieldType.Unsigned, upper_bound=key, include_upper=False))
    else:
        earlier = Query.range_query(SCHEMA, "ts", FieldType.Integer, lower_bound=ts, include_lower=False)
        same = _and(_ts_range(ts, ts), Query.range_query(SCHEMA, "key", FieldType.Unsigned, lower_bound=key, include_lower=False))
    return Query.boolean_query([(Occur.Should, earlier), (Occur.Should, same)])


def _ts_range(lower: int, upper: int) -> Query:
    return Query.range_query(SCHEMA, "ts", FieldType.Integer, lower_bound=lower, upper_bound=upper)


def _and(*queries: Query) -> Query:
    return Query.boolean_query([(Occur.Must, q) for q in queries])
