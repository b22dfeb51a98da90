"""A batch's rows for the recorder, made chunk by chunk while the recorder writes them.

The recorder writes a batch's event rows in its write transaction; PostgreSQL inserts
each chunk in its own server process, on the other core, while this process encodes
the next chunk and chains its links (streamed through COPY), instead of the server
idling while the whole batch is made and this process idling while it is inserted.
Iterating the rows once makes them all; the streams' new chain heads are complete
only then (PostgreSQL's rows carry their side index columns, ``BatchRows.at``).
SQLite's recorder, in this process, gains nothing from it: it takes the batch as
columns (``BatchRows.log_columns``), made at once before it takes its write lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from . import chain
from .events import EVENT_TYPES
from .idempotency import Batch
from .recorders import HeadRow, IndexColumns, LogColumns, running_highs

# Events made at a time: the server inserts one chunk while the next is made (it works on
# rows as soon as the recorder has sent them, ``postgres_copy._SEND_BYTES`` at a time).
# Large enough that the per-chunk steps cost nothing per event.
ROW_CHUNK = 1000


# Each event type's tag, the log's topic: looked up by type in C (~370 instructions fewer an event than
# reading it from the Struct's config, callgrind).
_TAG_OF = {cls: tag for tag, cls in EVENT_TYPES.items()}


def _tags(events: list) -> list[str]:
    return list(map(_TAG_OF.__getitem__, map(type, events)))


class Placement(Protocol):
    """Where a copied event goes in its stream (``archive.store``'s copies): its version, moving the
    stream's head (and its chain's link across a gap)."""

    def move(self, head: list, room: str, i: int) -> int: ...


class BatchRows:
    """Iterated (after ``at``): the batch's event rows, chunk by chunk, each event at its stream's next version (or its
    copy's), chained from its stream's head link (advanced in ``heads``). Plain tuples, not the library's
    StoredEvent (a frozen dataclass costs a microsecond an event to build): PostgreSQL's COPY takes them as
    they are. Or, made at once, the same values as columns (``log_columns()``). Afterwards: ``index_columns()``
    and ``chain_heads()``."""

    def __init__(self, batch: Batch, heads: dict[str, list], placed: Placement | None, *,
                 encode_states: Callable[[list], list], blob: bytes | bytearray, chained: bool):
        self._batch, self._heads, self._placed = batch, heads, placed
        # Binary values in the type the recorder's driver binds cheapest, made by adding to an empty one
        # (~440 instructions fewer an event than calling the type, callgrind).
        self._encode, self._blob, self._chained = encode_states, blob, chained
        self.count = len(batch.events)
        self._versions: list[int] = []
        self._links: list[bytes | None] = []
        self._columns: LogColumns | None = None
        self._started = False
        self._positions: Sequence[int] = ()
        self._seconds: list[int] = []
        self._highs: list[int] = []

    def __iter__(self) -> Iterator[list[tuple]]:
        """The rows behind their positions, with their side columns (``at``), chunk by chunk."""
        self._start()
        for start in range(0, self.count, ROW_CHUNK):
            yield self._chunk(start, min(start + ROW_CHUNK, self.count))

    def _start(self) -> None:
        # A second pass would go on from the heads the first advanced and add the index rows again.
        if self._started:
            raise RuntimeError("a batch's rows are made once: keep their columns (log_columns()) to read them again")
        self._started = True

    def at(self, positions: Sequence[int], highs: dict[str, int]) -> BatchRows:
        """These rows each made behind its log position (drawn, or a copy's) and followed by its side index
        columns (whole second, digest, occurred_at, link, the room's highest second so far, from each room's
        ``highs`` before the batch), for a log that holds them (PostgreSQL's), aligned with the batch: zipped
        in with the row's columns, no Python step per row as a generator putting them in front would take
        (~1,000 instructions an event of ~62,000, callgrind)."""
        if self._started:
            raise RuntimeError("a batch's positions are set before its rows are made")
        self._positions = positions
        self._seconds = self._batch.seconds
        self._highs = running_highs(self._batch.rooms, self._seconds, highs)
        return self

    def log_columns(self) -> LogColumns:
        """The log's columns (room, version, topic, state), aligned, the whole batch made by the first call: for
        a recorder that gains nothing from making rows while it writes (SQLite's, in this process), made before it
        takes its write lock, and bound from columns: no tuple an event (``archive.sqlite_recorder``)."""
        if self._columns is None:
            self._start()
            b = self._batch
            states, versions = self._made(0, self.count)
            self._columns = b.rooms, versions, _tags(b.events), states
        return self._columns

    def index_columns(self) -> IndexColumns:
        """The side index's columns, aligned (the rows made): each recorder zips what its table takes."""
        b = self._batch
        return b.rooms, b.seconds, self._versions, b.digests, b.times, self._links

    def chain_heads(self) -> list[HeadRow]:
        """The touched streams' heads after the batch (none for an unchained store)."""
        return [(room, *head) for room, head in self._heads.items() if self._chained and head[1] is not None]

    def _chunk(self, start: int, end: int) -> list[tuple]:
        b = self._batch
        states, versions = self._made(start, end)
        tags = _tags(b.events[start:end])
        return list(zip(self._positions[start:end], b.rooms[start:end], versions, tags, states,
                        self._seconds[start:end], b.digests[start:end], b.times[start:end], self._links[start:end],
                        self._highs[start:end]))

    def _made(self, start: int, end: int) -> tuple[list, list[int]]:
        """Events ``start`` to ``end``: their states and versions, their links chained (kept with their versions)."""
        b = self._batch
        events, rooms = b.events[start:end], b.rooms[start:end]
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
                links[i] = blob + head[1][:width]
        self._versions += versions
        self._links += links
        return states, versions
