"""The event store: idempotent, batched append and paged reads of archive events.

Design: every room is one event stream (an eventsourcing "aggregate" whose
originator id is the room JID and whose versions number the room's events). Archive events are immutable facts that no command has to validate
against aggregate state, so the store skips domain objects and snapshots: a
msgspec Struct becomes a ``StoredEvent`` (msgpack state) and goes straight to
the eventsourcing application recorder in batches. Starting to append to a room
costs one ``MAX(version)`` index lookup however many events it holds.

Concurrency: versions are assigned from an in-memory head per room. If another
writer took a version (the recorder's unique (room, version) key) or the event
was stored before (the idempotency key), the batch is rolled back, heads are
reloaded and already-stored events dropped, and the batch is tried again. The
first attempt does not look stored keys up: the unique key rejects duplicates.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError, StoredEvent

from .codec import from_msgpack, idempotency_key, to_msgpack
from .errors import ConcurrencyError, EventDecodeError, StoreError
from .events import Event, Recorded
from .recorders import IndexRow

MAX_ATTEMPTS = 20


class EventStore:
    """Append archive events at most once each; read them back by room or globally."""

    def __init__(self, recorder, *, close=None):
        self._recorder = recorder
        self._close = close
        self._heads: dict[str, int] = {}
        self._lock = threading.Lock()

    def append(self, events: Iterable[Event], batch_size: int = 1000) -> list[Recorded]:
        """Store the events not stored before; return those, with their positions.

        Events are written in batches of ``batch_size``, each batch atomically.
        """
        recorded: list[Recorded] = []
        batch: list[Event] = []
        for event in events:
            if not isinstance(event, Event):
                raise EventDecodeError(f"not an archive event: {event!r:.200}")
            batch.append(event)
            if len(batch) >= batch_size:
                recorded += self._append_batch(batch)
                batch = []
        if batch:
            recorded += self._append_batch(batch)
        return recorded

    def _append_batch(self, events: list[Event]) -> list[Recorded]:
        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(idempotency_key(event), event)
        with self._lock:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    # Optimistic first attempt: most batches hold nothing stored before, and the
                    # unique key rejects any that does, so the look-up of known keys (9-19% of
                    # append time) is only made when an attempt has failed.
                    return self._try_insert(unique, check_known=attempt > 0)
                except (IntegrityError, OperationalError) as e:
                    # A duplicate, or lost a race with another writer: reload heads and retry.
                    self._heads.clear()
                    if attempt == MAX_ATTEMPTS - 1:
                        raise ConcurrencyError(f"gave up appending after {MAX_ATTEMPTS} conflicts: {e}") from e
                    if attempt:
                        time.sleep(random.uniform(0, 0.005 * attempt))
                except PersistenceError as e:
                    raise StoreError(f"could not append events: {e}") from e
        raise AssertionError("unreachable")

    def _try_insert(self, unique: dict[str, Event], *, check_known: bool) -> list[Recorded]:
        known = self._recorder.known_keys(list(unique)) if check_known else set()
        todo = [(key, event) for key, event in unique.items() if key not in known]
        if not todo:
            return []
        # A room's stream is keyed by the room JID itself (text originator ids).
        missing = {event.room for _, event in todo} - self._heads.keys()
        new_rooms = []
        if missing:
            loaded = self._recorder.room_heads(missing)
            new_rooms = [room for room, version in loaded.items() if version == 0]
            self._heads.update(loaded)
        heads = dict(self._heads)
        stored: list[StoredEvent] = []
        index_rows: list[IndexRow] = []
        for key, event in todo:
            version = heads[event.room] = heads[event.room] + 1
            stored.append(StoredEvent(event.room, version, event.__struct_config__.tag, to_msgpack(event)))
            index_rows.append((key, event.room, version, event.occurred_at.timestamp()))
        positions = self._recorder.insert_events(stored, index_rows=index_rows, new_rooms=new_rooms)
        self._heads = heads
        return [Recorded(position, event) for position, (_, event) in zip(positions, todo)]

    def read_log(self, after: int = 0, *, page_size: int = 1000) -> Iterator[Recorded]:
        """Every event after global position ``after``, in log order, page by page."""
        while True:
            try:
                page = self._recorder.select_notifications(after, page_size, inclusive_of_start=False)
            except PersistenceError as e:
                raise StoreError(f"could not read the log: {e}") from e
            for notification in page:
                yield Recorded(notification.id, from_msgpack(notification.state))
            if len(page) < page_size:
                return
            after = page[-1].id

    def read_room(
        self,
        room: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int = 1000,
    ) -> Iterator[Recorded]:
        """A room's events in the order they were archived, optionally those
        that occurred in [start, end), page by page."""
        t_from = start.timestamp() if start else None
        t_to = end.timestamp() if end else None
        after_version = 0
        while True:
            try:
                page = self._recorder.select_room(room, after_version, page_size, t_from, t_to)
            except PersistenceError as e:
                raise StoreError(f"could not read room {room}: {e}") from e
            for position, _, state in page:
                yield Recorded(position, from_msgpack(state))
            if len(page) < page_size:
                return
            after_version = page[-1][1]

    def rooms(self) -> list[str]:
        """Every room that has at least one event, by JID."""
        return self._recorder.rooms()

    def head(self) -> int:
        """The highest global position stored, 0 for an empty store."""
        return self._recorder.max_notification_id() or 0

    def close(self) -> None:
        if self._close:
            self._close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
