"""Pages sorted by relevance (score, then key), by offset: ``relevance_page``."""

from __future__ import annotations

from tantivy import Query

from .storedlines import StoredLines
from .timepage import FEW_KEYS, keys_of

# A common word's run of equal scores at a first page's end is 80-180 hits long at 1M: a window
# that holds it saves the second search (a top-1,000 costs about as much as the first, ~1 ms).
TIE_WINDOW = 256
# A phrase's run is longer (the bench's common phrases: all of the window), so a phrase asks for this at once.
MAX_TIE_RUN = 1_000  # 5,000 cost ~0.6 ms of a ~1.1 ms search at 1M; 1,000 about 0.1


def relevance_page(
    searcher, base: Query, limit: int, offset: int, lines: StoredLines, window: int = TIE_WINDOW, total: int | None = None
):
    """(score, ts, key, address) rows, the total (``total`` where it is known: nothing is counted), whether more follow.

    Equal scores are ordered by key (the log position), not by tantivy's document
    address, which depends on how this index's segments happened to be written: so
    every index of the same log (one per API host) returns the same page, and a
    cursor from one host pages on another. A run of equal scores across the page's
    end has to be ordered whole: ``TIE_WINDOW`` more hits come with the page, and a
    longer run is fetched again with up to ``MAX_TIE_RUN`` (beyond that, pages deep
    inside one run of equal scores may overlap). A query whose runs are known to be long
    (a phrase) asks for ``MAX_TIE_RUN`` at once (``window``): the same page in one search, not two.
    """
    end = offset + limit
    fetched = end + 1 + window
    result = searcher.search(base, fetched, count=total is None)
    total = result.count if total is None else total
    hits = result.hits
    if window < MAX_TIE_RUN and len(hits) == fetched and hits[-1][0] == hits[end - 1][0]:
        hits = searcher.search(base, end + 1 + MAX_TIE_RUN).hits
    if len(hits) > end:
        boundary = hits[end - 1][0]
        hits = [hit for hit in hits if hit[0] >= boundary]
    addresses = [address for _, address in hits]
    keys = tie_keys(searcher, hits, addresses, lines, end - offset)
    # Tuples compared in C (equal scores have unique keys, so addresses are never compared): no key function.
    page = sorted(zip([-score for score, _ in hits], keys, addresses))[offset:end]
    return [(-negated, 0, key, address) for negated, key, address in page], total, total > end


def tie_keys(searcher, hits: list, addresses: list, lines: StoredLines, shown: int) -> list[int]:
    """Keys where they order anything: only equal scores are compared by key (hits come best
    first, so equal scores are neighbours); a rare word's few tied hits are read from their
    stored lines, not the column (``keys_of``). Hits whose score no other has get 0.
    ``shown``: how many hits the page shows."""
    if len(hits) - shown > 2 * FEW_KEYS:
        return keys_of(searcher, addresses, lines)
    scores = [score for score, _ in hits]
    last = len(scores) - 1
    tied = [i for i, s in enumerate(scores) if (i and scores[i - 1] == s) or (i < last and scores[i + 1] == s)]
    keys = [0] * len(hits)
    for i, key in zip(tied, keys_of(searcher, [addresses[i] for i in tied], lines, shown)):
        keys[i] = key
    return keys
