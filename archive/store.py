"""The event store: idempotent, batched append and paged reads of archive events.

Design: every room is one event stream (an eventsourcing "aggregate" whose
originator id is the room JID and whose versions number the room's events). Archive events are immutable facts that no command has to validate
against aggregate state, so the store skips domain objects and snapshots: a
msgspec Struct becomes a row (msgpack state) and goes straight to
the eventsourcing application recorder in batches. Starting to append to a room
costs one ``MAX(version)`` index lookup however many events it holds.

Idempotency: the same stanza is never stored twice, on one assumption: **a
duplicate occurs within ``archive.idempotency.WINDOW`` (10 minutes) of its
original's time** (clock skew between server and archive plus delivery delay;
replays and imports carry the original's own time). Every event's key
(``archive.codec.idempotency_key``) is stored in a slot (room, hour bucket,
digest), looked up in the write transaction with the writers' lock held, so a
second copy in the same hour is rejected; an event within ``WINDOW`` of its
hour's edge is also looked up in the neighbouring hour. A later copy more than
``WINDOW`` from its original, in another hour and not itself within ``WINDOW`` of
the edge next to the original's hour, is stored a second time (unless both are
in one batch). Why slots: new
keys land at the end of the room's range of the side index, in a few hot pages,
rather than in random pages of one store-wide index, so the append rate does not
fall as the store grows (see ``archive.idempotency``).

Concurrency: versions are assigned from an in-memory head per room. If another
writer took a version (PostgreSQL's unique (room, version) key; SQLite's check of
each room's stored head in the write transaction) or the event
was stored before (its slot, or the neighbouring one), the batch is rolled back,
heads are reloaded and already-stored events dropped, and the batch is tried
again. The first attempt does not look stored keys up before its transaction:
the in-transaction look-up of the batch's slots rejects duplicates.

Tamper evidence: every event's hash-chain link (``archive.chain``) is computed
from its stream's head link, kept in memory beside the version, and written with
the event and the stream's new head in the same transaction.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError

from . import chain
from .audit_store import MAX_ATTEMPTS, AuditStore
from .batch_rows import BatchRows
from .codec import from_msgpack
from .copied_trails import copied_checkpoint_marks
from .errors import ConcurrencyError, EventDecodeError, StoreError
from .events import SYSTEM_STREAMS, ChainHead, Event, Recorded, is_audit_trail
from .idempotency import Batch, Probe, every_slot, slotted
from .lease_tables import Fence
from .log_reads import LogReads
from .recorders import RoomRow, stream_version
from .store_errors import connection_lost, store_error

# Events per transaction at most: writers hand over everything queued up to this many. A commit
# costs about as much for 10,000 events as for 1,000 (it writes the pages the batch dirtied, and
# a room's new keys share pages), so large batches are what keep up with a backlog.
MAX_BATCH = 10_000


@dataclass(frozen=True)
class CopiedChains:
    """How copied streams' chains go on as in their source: across a purge's gap from the link it recorded
    (``resume_links``: (stream, first version after the gap) -> link), as ``chain.walk_chain`` resumes; and from
    the version each began at (``geneses``: stream -> version; a store older than its chains holds unchained
    events below it), so that every link and head is the source's and its checkpoints hold in the copy."""

    resume_links: Mapping[tuple[str, int], bytes]
    geneses: Mapping[str, int]


class _Placed:
    """The positions and versions of copied events (``EventStore.append_copies``), aligned with their batch."""

    def __init__(self, positions: list[int], versions: list[int], chains: CopiedChains, marks: Mapping[str, int]):
        self.positions, self.versions, self.chains, self.marks = positions, versions, chains, marks

    def only(self, indexes: list[int]) -> _Placed:
        return _Placed([self.positions[i] for i in indexes], [self.versions[i] for i in indexes], self.chains,
                       self.marks)

    def copied_marks(self) -> dict[str, int]:
        """The marks of the checkpoints these copies bring (``archive.copied_trails``)."""
        return copied_checkpoint_marks(max(self.positions), self.marks)

    def move(self, head: list, room: str, i: int) -> int:
        """Event ``i``'s version; across a gap its stream's chain resumes from the purge's link; a stream not
        chained yet begins its chain where the source's began."""
        version = self.versions[i]
        if version <= head[0]:
            raise StoreError(f"{room} holds version {version} already, with another event: copy into an empty store")
        if head[1] is None:
            # A stream the source never chained stays unchained: its chain begins with its next append.
            head[2] = self.chains.geneses.get(room, version + 1)
        if version > head[0] + 1:
            # A gap no purge recorded (the source's events deleted behind its back) has no link to
            # resume from: the chain goes on from the last one, and the copy's head differs.
            head[1] = self.chains.resume_links.get((room, version), head[1])
        return version


def _check_events(events: list) -> None:
    if not all(map(isinstance, events, itertools.repeat(Event))):
        wrong = next(event for event in events if not isinstance(event, Event))
        raise EventDecodeError(f"not an archive event: {wrong!r:.200}")


class EventStore(LogReads, AuditStore):
    """Append archive events at most once each; read them back by room or globally (the log in global
    order: ``archive.log_reads``; the audit trail beside the log: ``archive.audit_store``)."""

    def __init__(self, recorder, *, close=None, chained: bool = True):
        """``chained=False`` writes no hash chain: only for the benchmark's baseline."""
        super().__init__(recorder)
        self._close = close
        self._chained = chained
        # stream -> [version, head link or None before its chain began, genesis version]
        self._heads: dict[str, list] = {}
        self._lock = threading.Lock()

    def append(
        self, events: Iterable[Event], batch_size: int = MAX_BATCH, *, fence: Fence | None = None
    ) -> list[Recorded]:
        """Store the events not stored before; return those, with their positions.

        Events are written in batches of ``batch_size``, each batch atomically. ``fence``: each batch under that
        lease (``archive.lease_tables``), committed only if its holder has it unexpired by the database's clock,
        checked in the batch's transaction; else ``Fenced`` and nothing of that batch is stored.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")  # islice would take nothing
        recorded: list[Recorded] = []
        events = iter(events)
        # A batch taken and checked whole: no Python step per event here.
        while batch := list(itertools.islice(events, batch_size)):
            _check_events(batch)
            recorded += self._append_batch(slotted(batch), fence=fence)
        return recorded

    def append_copies(
        self, copies: list[tuple[int, Recorded]], chains: CopiedChains, marks: Mapping[str, int] | None = None
    ) -> list[Recorded]:
        """Store events copied from another store (``chat-archive migrate``), each at the log position and
        the version it has there, those not stored here before, in one transaction; return those. In the same
        transaction, the marks of the checkpoints they bring (``archive.copied_trails``; ``marks``: the source's
        own, as ``AuditStore.copied_checkpoints`` reads them there); none for a page holding nothing new.

        Positions are kept, gaps included, because records name events by position: a ``PurgeApplied``
        names its purge's record, and a client's replay cursor is one. Renumbered, the source's numbers
        would name later events here (a purge made after the copy would look applied before its rebuild).

        A purge's gap in a stream stays a gap, and its chain goes on as the source's (``CopiedChains``): its
        purge records and checkpoints hold here too. Every event of the page is kept (no in-batch
        deduplication: the source stored them all)."""
        events = [record.event for _, record in copies]
        _check_events(events)
        placed = _Placed([record.position for _, record in copies], [version for version, _ in copies], chains,
                         marks or {})
        return self._append_batch(every_slot(events), placed)

    def _append_batch(self, batch: Batch, placed: _Placed | None = None, fence: Fence | None = None) -> list[Recorded]:
        with self._lock:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    # Optimistic first attempt: most batches hold nothing stored before, and the
                    # look-up in the write transaction rejects any that does, so the look-up of
                    # known keys beforehand is only made when an attempt has failed. A copy looks
                    # up at once: resumed, it starts with what the target holds already.
                    return self._try_insert(batch, check_known=attempt > 0 or placed is not None, placed=placed,
                                            fence=fence)
                except (IntegrityError, OperationalError) as e:
                    if connection_lost(e):
                        raise store_error("could not append events", e) from e
                    # A duplicate, or lost a race with another writer: reload heads and retry.
                    self._heads.clear()
                    if attempt == MAX_ATTEMPTS - 1:
                        raise ConcurrencyError(f"gave up appending after {MAX_ATTEMPTS} conflicts: {e}") from e
                    if attempt:
                        time.sleep(random.uniform(0, 0.005 * attempt))
                except PersistenceError as e:
                    raise store_error("could not append events", e) from e
        raise AssertionError("unreachable")

    def _try_insert(
        self, batch: Batch, *, check_known: bool, placed: _Placed | None, fence: Fence | None
    ) -> list[Recorded]:
        if check_known:
            known = self._recorder.stored_slots(Probe(batch))
            new = [i for i in range(len(batch.events)) if known.isdisjoint(batch.slots(i))]
            batch = batch.only(new)
            placed = placed and placed.only(new)
        if not batch.events:
            return []
        # A room's stream is keyed by the room JID itself (text originator ids).
        touched = set(batch.rooms)
        missing = touched - self._heads.keys()
        new_rooms = []
        if missing:
            loaded = self._recorder.room_heads(missing)
            new_rooms = [room for room, (version, _) in loaded.items() if version == 0 and room not in SYSTEM_STREAMS]
            for room, (version, head) in loaded.items():
                version = stream_version(version, head)
                self._heads[room] = [version, head[2], head[3]] if head else [version, None, version + 1]
        # Copies of the touched heads, kept only if the batch commits.
        heads = {room: list(self._heads[room]) for room in touched}
        # Made while the recorder writes them, in its transaction (``archive.batch_rows``).
        rows = BatchRows(batch, heads, placed, encode_states=self._recorder.encode_states,
                         blob=self._recorder.blob, chained=self._chained)
        # ``heads``: the version each stream's rows are numbered from, which SQLite checks with its write lock held.
        positions = self._recorder.insert_events(
            rows, probe=Probe(batch), new_rooms=new_rooms, positions=placed.positions if placed else None,
            heads={room: self._heads[room][0] for room in touched}, copied_marks=placed and placed.copied_marks(),
            fence=fence)
        self._heads.update(heads)
        return list(map(Recorded, positions, batch.events))

    def read_room(
        self,
        room: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int = 1000,
    ) -> Iterator[Recorded]:
        """A room's events, page by page: all of them in the order they were archived, or
        those that occurred in [start, end) in the room's order (the whole second they
        occurred in, then the order archived: ``archive.times.order_second``).

        A time-ranged read walks an index in that order from where the last page
        stopped: every page costs the same, however large the room or the range."""
        if start is None and end is None:
            yield from self._read_room_log(room, page_size)
            return
        t_from = start.timestamp() if start else None
        t_to = end.timestamp() if end else None
        after = None
        while True:
            try:
                page = self._recorder.select_room_range(room, after, page_size, t_from, t_to)
            except PersistenceError as e:
                raise StoreError(f"could not read room {room}: {e}") from e
            for position, _, state, _ in page:
                yield Recorded(position, from_msgpack(state))
            if len(page) < page_size:
                return
            after = (page[-1][3], page[-1][1])

    def _read_room_log(self, room: str, page_size: int) -> Iterator[Recorded]:
        after = None
        while True:
            try:
                page = self._recorder.select_room(room, after, page_size)
            except PersistenceError as e:
                raise store_error(f"could not read room {room}", e) from e
            for position, _, state, _ in page:
                yield Recorded(position, from_msgpack(state))
            if len(page) < page_size:
                return
            after = page[-1]

    def read_room_versions(self, room: str, *, end: datetime | None = None) -> Iterator[tuple[int, Recorded]]:
        """A room's events (that occurred before ``end``) with their versions in the room's stream,
        in version order (a walk of the whole stream: for batch jobs such as a purge)."""
        for position, version, state, _ in self._stream_rows(room):
            record = Recorded(position, from_msgpack(state))
            if end is None or record.event.occurred_at < end:
                yield version, record

    def _stream_rows(self, stream: str) -> Iterator[RoomRow]:
        """(position, version, stored bytes, walk) of a whole stream, in version order, page by page."""
        after = None
        while True:
            try:
                page = self._recorder.select_room(stream, after, 1000)
            except PersistenceError as e:
                raise StoreError(f"could not read stream {stream}: {e}") from e
            yield from page
            if len(page) < 1000:
                return
            after = page[-1]

    def delete_events(self, room: str, versions: list[int], before: datetime) -> None:
        """Physically delete events of a room by version (a purge: see ``archive.retention``)."""
        try:
            # A stream not chained yet has no head row to keep its versions going past its deleted tail:
            # its chain begins with the purge, at its last version, so that no purged version is reused.
            self._recorder.delete_versions(room, versions, before.timestamp(), chain.genesis(room))
        except PersistenceError as e:
            raise StoreError(f"could not delete events of room {room}: {e}") from e

    def erase_deleted_copies(self) -> None:
        """After ``delete_events``: leave no older copy of the deleted rows in the store's files where the
        store can prevent it (SQLite's write-ahead log; PostgreSQL cannot: see the README)."""
        try:
            self._recorder.erase_deleted_copies()
        except PersistenceError as e:
            raise store_error("the deleted events' older copies could not be erased", e) from e

    def carry_heads(self, heads: Iterable[ChainHead]) -> None:
        """Set streams' chain heads beyond their last stored event: a copy of a store whose streams'
        last events were purged goes on at the versions and from the links the source would."""
        rows = [(h.stream, h.version, bytes.fromhex(h.link), h.genesis_version) for h in heads]
        with self._lock:
            try:
                self._recorder.write_chain_heads(rows)
            except PersistenceError as e:
                raise store_error("could not write chain heads", e) from e
            self._heads.clear()

    def event_counts(self) -> dict[str, int]:
        """How many events every stream holds (a purge leaves fewer than its head's version)."""
        try:
            return self._recorder.event_counts()
        except PersistenceError as e:
            raise store_error("could not count the events", e) from e

    def rooms(self) -> list[str]:
        """Every room that has at least one event, by JID."""
        try:
            return self._recorder.rooms()
        except PersistenceError as e:
            raise store_error("could not list the rooms", e) from e

    def streams(self) -> list[str]:
        """Every stream with events: the rooms and the archive's own (``archive.events.SYSTEM_STREAMS``)."""
        try:
            return sorted({*self._recorder.streams(), *self.audit_trails()})
        except PersistenceError as e:
            raise store_error("could not list the streams", e) from e

    def chain_heads(self) -> list[ChainHead]:
        """Every stream's hash-chain head as recorded with its last append (an audit trail's: its last record)."""
        try:
            heads = [ChainHead(s, v, link.hex(), g) for s, v, link, g in self._recorder.chain_heads()]
            return sorted([*heads, *self._trail_heads()], key=lambda h: h.stream)
        except PersistenceError as e:  # a server restarting is StoreUnavailable: the checkpoints try again
            raise store_error("could not read the chain heads", e) from e

    def stream_link_map(self, stream: str) -> dict[int, bytes | None]:
        """Every stored chain link of a stream by version."""
        try:
            return self._recorder.stream_links(stream)
        except PersistenceError as e:
            raise store_error(f"could not read the chain links of {stream}", e) from e

    def stream_links(self, stream: str) -> Iterator[chain.StoredLink]:
        """A stream's events with their stored chain links, in version order (for verification)."""
        if is_audit_trail(stream):
            for seq, state, link in self._audit_rows(0, None, None, 1000, trail=stream):
                yield chain.StoredLink(seq, seq, state, link)
            return
        links = self._recorder.stream_links(stream)
        for position, version, state, _ in self._stream_rows(stream):
            yield chain.StoredLink(position, version, state, links.get(version))

    def head(self) -> int:
        """The highest global position stored, 0 for an empty store."""
        try:
            return self._recorder.max_notification_id() or 0
        except PersistenceError as e:
            raise store_error("could not read the log's head", e) from e

    def close(self) -> None:
        if self._close:
            self._close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
