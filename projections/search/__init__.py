"""Full-text search: a tantivy index kept near real time as a projection of the log.

Reading (the query API, web pages, the CLI)::

    index = SearchIndex(IndexLocation(config.index.path))   # bootstrap.open_search_index(config)
    results = index.search(
        "deploy* from:alice after:-7d",         # the query language: query.py, README "Search query language"
        Scope(rooms=frozenset({"dev@conference.example.org"}), compliance=False, jids=False),
        sort="relevance",                       # or "newest", "oldest" (Sort)
        limit=20,                               # 1..500
        cursor=None,                            # results.next_cursor of the previous page
        facets=None, facet_size=10,             # None: on the first page only
        exact_total=False,                      # True: count every match (see total_relation)
    )                                           # -> SearchResults
    index.position()                            # log position the index has committed
    index.rooms()                               # every room JID in the index

``SearchResults``: ``query``, ``sort``, ``total`` (all matches in scope, or
at least that many where ``total_relation`` is "gte": a newest/oldest first page
without ``exact_total`` or facets), ``hits`` (``Hit``: ``position`` of the original message for opening the
transcript around it, ``room``, ``nick``, ``jid``, ``time``, ``body``, ``snippet``
(escaped HTML, matches in ``<mark>``), ``thread``, ``capture``, ``edited``,
``retracted`` and ``earlier_versions`` (compliance scope only), ``score``
(relevance sort)), ``next_cursor`` (None on the last page), ``facets``
(``Facets``: ``rooms`` and ``senders``, lists of ``FacetCount(value, count)``
over all matches), ``index_position``. All are msgspec Structs:
``msgspec.json.encode(results)`` is the API's JSON.

``Scope.rooms`` is the set of rooms the caller may see (None: every room); it is
a clause of the tantivy query, so totals and facets never count other rooms.
``Scope.compliance`` adds retracted messages (marked) and earlier versions of
corrected ones, and allows ``is:retracted``; ``Scope.jids`` (default False)
allows ``jid:`` (only for callers who may see real JIDs). Malformed queries, a
refused filter, bad limits and foreign cursors raise
``archive.errors.InvalidQueryError`` (``position`` set where the query says it);
an index that needs ``chat-archive rebuild search`` raises ``StoreError``.

Time sorts page by keyset (time, position): stable while messages keep
arriving. Relevance pages by offset: stable while the index does not change.

Writing: ``SearchIndexProjection`` (``projection.py``) is a follower
``Projection`` and a ``rebuild.Rebuildable``; ``SearchIndexer`` (``indexer.py``)
runs it near real time; ``IndexLocation`` (``storage.py``) keeps generations
behind an atomically swapped link.
"""

from .indexer import IndexerThread, SearchIndexer
from .projection import SearchIndexProjection
from .results import FacetCount, Facets, Hit, Scope, SearchResults, Sort
from .schema import IndexUnusable
from .searcher import SearchIndex
from .storage import IndexLocation

__all__ = [
    "FacetCount",
    "Facets",
    "Hit",
    "IndexLocation",
    "IndexUnusable",
    "IndexerThread",
    "Scope",
    "SearchIndex",
    "SearchIndexProjection",
    "SearchIndexer",
    "SearchResults",
    "Sort",
]
