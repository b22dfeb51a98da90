"""Tamper evidence: every stream (a room, or the archive's own compliance and audit streams)
is a hash chain.

Each event's link is ``SHA-256(previous link || version || stored bytes)``; the first
link of a stream hashes a genesis value derived from the stream's name. A store
created before chaining existed starts each stream's chain at the first event
appended after the upgrade (its *genesis version*); the events before it are
reported as not covered, never as verified.

Each event stores the first ``STORED_LINK`` bytes of its link (a store written before
keeps all 32: a wider stored link compares more); the full links live in the chain
heads, the checkpoints and the purge records, which the walk compares at full width.
A link is 128 bits wherever it is compared to one event, and every later full link
depends on the whole of it.

``walk_chain`` is the one rule that recomputes a stream and names its first broken
link; the store, ``verify --integrity`` and the purge use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .events import ChainHead, PurgedSpan, trail_origin


def genesis(stream: str) -> bytes:
    """A stream's first link's predecessor; a copied audit trail's is its origin's: it goes on the source's chain."""
    return hashlib.sha256(b"chat-archive chain genesis\x00" + trail_origin(stream).encode()).digest()


# A fresh SHA-256 copied, not made: OpenSSL 3 looks the algorithm up and sets a context up for each
# ``hashlib.sha256()``, a copy of a made one skips that (process CPU per link of a ~290-byte state,
# medians of 10 interleaved rounds at load 7: 1.34 -> 1.08 us). Its own hardware SHA-256 still hashes:
# CPython's software one (``archive.idempotency``'s, for keys of a block or two) takes ~2.1 us here.
_SHA256 = hashlib.sha256()


# PostgreSQL's audit append computes the same in SQL (archive.audit_tables.PostgresAuditTable.audit_function).
def link(previous: bytes, version: int, state: bytes) -> bytes:
    # The state fed apart: concatenating it would copy it twice for every event appended; the 40 bytes
    # before it are joined, one call fewer (a call costs more than copying them).
    digest = _SHA256.copy()
    digest.update(previous + version.to_bytes(8, "big"))
    digest.update(state)
    return digest.digest()


# Bytes of an event's link stored beside it: half a link, 16 bytes fewer a side row of the stored
# ~110, which a commit writes in every page it dirties (SQLite: 963 -> 936 WAL bytes an event).
STORED_LINK = 16


def matches(stored_link: bytes, computed: bytes) -> bool:
    """Whether an event's stored link is its recomputed one: at least ``STORED_LINK`` bytes of it."""
    return len(stored_link) >= STORED_LINK and computed.startswith(stored_link)


@dataclass(frozen=True)
class StoredLink:
    """One event as a stream walk sees it."""

    position: int
    version: int
    state: bytes
    link: bytes | None


@dataclass(frozen=True)
class Break:
    """The first broken link of a stream."""

    stream: str
    version: int
    position: int | None
    problem: str

    def __str__(self) -> str:
        where = f"version {self.version}" + (f" (log position {self.position})" if self.position else "")
        return f"{self.stream}: {where}: {self.problem}"


@dataclass(frozen=True)
class WalkResult:
    stream: str
    events: int  # events checked against the chain
    unchained: int  # events archived before the stream's chain began
    head: ChainHead | None  # recomputed last link
    broken: Break | None
    kept: dict[int, bytes] = field(default_factory=dict)  # the recomputed full links asked for (``keep``)


def walk_chain(
    stream: str,
    rows: Iterable[StoredLink],
    genesis_version: int,
    recorded_head: ChainHead | None = None,
    purged: Mapping[int, PurgedSpan] | None = None,
    checkpoints: Iterable[ChainHead] = (),
    keep: Container[int] = (),
) -> WalkResult:
    """Recompute ``stream``'s chain over ``rows`` (in version order) and compare every stored link,
    the recorded head and every checkpointed link with the recomputed ones.

    ``purged`` maps the first version of each deliberately deleted span to its record: the
    chain resumes after it from the link recorded at the cut. The full links of the versions in ``keep``
    (up to the first broken one) come back in the result's ``kept``.
    """
    purged = purged or {}
    expected_at = {c.version: c.link for c in checkpoints if c.stream == stream}
    previous, expected, events, unchained, last = genesis(stream), genesis_version, 0, 0, None
    kept: dict[int, bytes] = {}
    for row in _skipping_purged(rows, purged):
        if isinstance(row, PurgedSpan):
            if row.last < genesis_version:  # events archived before chaining began
                continue
            # A span may begin before the genesis (events archived before chaining began, purged with the
            # first chained ones): the chain then resumes after it like after any other.
            if row.first != expected and not (expected == genesis_version and row.first < expected):
                return _result(stream, events, unchained, last, row.first, None,
                               f"purge record starts at version {row.first}, but version {expected} is missing")
            previous, expected = bytes.fromhex(row.link), row.last + 1
            last = ChainHead(stream, row.last, row.link, genesis_version)
            continue
        if row.version < genesis_version:
            unchained += 1
            continue
        if row.version != expected:
            missing = f"{expected}" if row.version == expected + 1 else f"{expected}-{row.version - 1}"
            return _result(stream, events, unchained, last, expected, row.position,
                           f"event version(s) {missing} deleted (the stream jumps to version {row.version})")
        computed = link(previous, row.version, row.state)
        if row.link is None:
            return _result(stream, events, unchained, last, row.version, row.position, "chain link missing")
        if not matches(row.link, computed):
            return _result(stream, events, unchained, last, row.version, row.position,
                           "stored bytes or link altered: the event no longer hashes to its recorded link "
                           f"(recorded {row.link.hex()[:16]}..., recomputed {computed.hex()[:16]}...)")
        want = expected_at.get(row.version)
        if want is not None and want != computed.hex():
            return _result(stream, events, unchained, last, row.version, row.position,
                           f"differs from the checkpointed link {want[:16]}...")
        previous, expected, events = computed, row.version + 1, events + 1
        if row.version in keep:
            kept[row.version] = computed
        last = ChainHead(stream, row.version, computed.hex(), genesis_version)
    if recorded_head is not None and recorded_head.version >= expected:
        return _result(stream, events, unchained, last, expected, None,
                       f"event version(s) {expected}-{recorded_head.version} deleted (the recorded chain head is "
                       f"version {recorded_head.version})")
    # The stored links are prefixes: the head is compared at full width.
    if recorded_head is not None and last is not None and recorded_head.version == last.version \
            and recorded_head.link != last.link:
        return _result(stream, events, unchained, last, last.version, None,
                       f"differs from the recorded chain head {recorded_head.link[:16]}...")
    beyond = [v for v in expected_at if v >= expected]
    if beyond:
        return _result(stream, events, unchained, last, expected, None,
                       f"event version(s) {expected}-{max(beyond)} deleted (a checkpoint covers version {max(beyond)})")
    return WalkResult(stream, events, unchained, last, None, kept)


def _skipping_purged(rows: Iterable[StoredLink], purged: Mapping[int, PurgedSpan]) -> Iterator:
    """The rows, with each purge record yielded where its span begins; rows inside a span (a purge
    recorded but interrupted before its deletes) are left out, the next purge deletes them."""
    pending = sorted(purged.values(), key=lambda s: s.first)
    current = None
    for row in rows:
        while pending and pending[0].first <= row.version:
            current = pending.pop(0)
            yield current
        if current is not None and current.first <= row.version <= current.last:
            continue
        yield row
    yield from pending


def _result(stream, events, unchained, last, version, position, problem) -> WalkResult:
    return WalkResult(stream, events, unchained, last, Break(stream, version, position, problem))
