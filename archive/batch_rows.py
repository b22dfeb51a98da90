"""A batch's rows for the recorder, made chunk by chunk while the recorder writes them.

The recorder writes a batch's event rows in its write transaction; PostgreSQL inserts
each chunk in its own server process, on the other core, while this process encodes
the next chunk and chains its links (streamed through COPY), instead of the server
idling while the whole batch is made and this process idling while it is inserted.
Iterating the rows once makes them all; SQLite's side index rows and the streams'
new chain heads are complete only then (the recorders write the event rows first;
PostgreSQL's rows carry their side index columns, ``BatchRows.at``).
SQLite's recorder, in this process, gains nothing from it: it makes them first
(``BatchRows.made``), before it takes its write lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from . import chain
from .idempotency import Batch
from .recorders import EventRow, HeadRow, IndexColumns, running_highs

# Events made at a time: the server inserts one chunk while the next is made (it works on
# rows as soon as the recorder has sent them, ``postgres_copy._SEND_BYTES`` at a time).
# Large enough that the per-chunk steps cost nothing per event.
ROW_CHUNK = 1000


class Placement(Protocol):
    """Where a copied event goes in its stream (``archive.store``'s copies): its version, moving the
    stream's head (and its chain's link across a gap)."""

    def move(self, head: list, room: str, i: int) -> int: ...


class BatchRows:
    """Iterated: the batch's event rows, chunk by chunk, each event at its stream's next version (or its
    copy's), chained from its stream's head link (advanced in ``heads``). Plain tuples, not the library's
    StoredEvent (a frozen dataclass costs a microsecond an event to build): the recorders' insert
    statements take them as they are. Afterwards: ``index_columns()`` and ``chain_heads()``."""

    def __init__(self, batch: Batch, heads: dict[str, list], placed: Placement | None, *,
                 encode_states: Callable[[list], list], blob: type, chained: bool):
        self._batch, self._heads, self._placed = batch, heads, placed
        # Binary values in the type the recorder's driver binds cheapest.
        self._encode, self._blob, self._chained = encode_states, blob, chained
        self.count = len(batch.events)
        self._versions: list[int] = []
        self._links: list[bytes | None] = []
        self._made: list[list[EventRow]] | None = None
        self._started = False
        self._positions: Sequence[int] | None = None
        self._seconds: list[int] = []
        self._highs: list[int] = []

    def __iter__(self) -> Iterator[list[EventRow]]:
        if self._made is not None:
            yield from self._made
            return
        # A second pass would go on from the heads the first advanced and add the index rows again.
        if self._started:
            raise RuntimeError("a batch's rows are made once: keep them (made()) to iterate them again")
        self._started = True
        for start in range(0, self.count, ROW_CHUNK):
            yield self._chunk(start, min(start + ROW_CHUNK, self.count))

    def at(self, positions: Sequence[int], highs: dict[str, int]) -> BatchRows:
        """These rows each made behind its log position (drawn, or a copy's) and followed by its side index
        columns (whole second, digest, occurred_at, link, the room's highest second so far, from each room's
        ``highs`` before the batch), for a log that holds them (PostgreSQL's), aligned with the batch: zipped
        in with the row's columns, no Python step per row as a generator putting them in front would take
        (~1,000 instructions an event of ~62,000, callgrind)."""
        if self._started or self._made is not None:
            raise RuntimeError("a batch's positions are set before its rows are made")
        self._positions = positions
        self._seconds = list(map(math.floor, self._batch.times))
        self._highs = running_highs(self._batch.rooms, self._seconds, highs)
        return self

    def made(self) -> BatchRows:
        """These rows made at once (iterating them then makes nothing): for a recorder that gains nothing
        from making them while it writes, so as not to hold its write lock while they are made."""
        if self._made is None:
            self._made = list(self)
        return self

    def index_columns(self) -> IndexColumns:
        """The side index's columns, aligned (the rows made): each recorder zips what its table takes."""
        b = self._batch
        return b.rooms, list(map(math.floor, b.times)), self._versions, b.digests, b.times, self._links

    def chain_heads(self) -> list[HeadRow]:
        """The touched streams' heads after the batch (none for an unchained store)."""
        return [(room, *head) for room, head in self._heads.items() if self._chained and head[1] is not None]

    def _chunk(self, start: int, end: int) -> list[EventRow]:
        b = self._batch
        events, rooms, times = b.events[start:end], b.rooms[start:end], b.times[start:end]
        states = self._encode(events)
        heads, placed, blob = self._heads, self._placed, self._blob
        versions = [0] * len(events)
        links: list[bytes | None] = [None] * len(events)
        # The stored part of each link sliced here, not by a call an event.
        link, width = (chain.link, chain.STORED_LINK) if self._chained else (None, 0)
        for i, room, state in zip(range(len(events)), rooms, states):
            head = heads[room]
            version = versions[i] = head[0] = head[0] + 1 if placed is None else placed.move(head, room, start + i)
            if link is not None and version >= head[2]:  # below a copied chain's genesis: unchained, as there
                head[1] = link(head[1] or chain.genesis(room), version, state)
                links[i] = blob(head[1][:width])
        self._versions += versions
        self._links += links
        tags = [event.__struct_config__.tag for event in events]
        if self._positions is None:
            return list(zip(rooms, versions, tags, states))
        return list(zip(self._positions[start:end], rooms, versions, tags, states, self._seconds[start:end],
                        b.digests[start:end], times, links, self._highs[start:end]))
