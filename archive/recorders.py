"""eventsourcing application recorders extended with the archive's side tables: what both stores share.

The library's events table is kept as eventsourcing defines it, without its
(room, version) key: the side index orders each room, and the writer checks each
room's stored head with the writers' lock held (``checked_highs``). Beside it,
in the same transaction as every insert, the archive writes:

- the side index (SQLite's ``archive_event_index`` table; on PostgreSQL columns
  of the log's own rows, written by the same COPY): one row per event, keyed in
  the room's order (time-range reads of a room walk this key), with the 8-byte
  digest of its idempotency key, its ``occurred_at`` as epoch seconds and its
  hash-chain link. Both stores key it ``(room, the room's highest whole second
  so far, version)`` (SQLite's table, with the log position; PostgreSQL's index
  of the log), its version order too, and index the events older than their
  room's newest also at their own second (``archive.sqlite_recorder``,
  ``archive.postgres_recorder``). The key is also where
  an idempotency slot (``archive.idempotency``: room, hour bucket, digest) is
  looked up: a bucket is a range of the key, read with the writers' lock held,
  in the insert's transaction, so no two writers can both find a slot empty;
- ``archive_rooms``: every room JID (originator id) that has events;
- ``archive_audit``: the audit trail (``archive.audit``), outside the event log so
  that reads never become events the projections must step over;
- ``archive_chain_heads``: each stream's last link and the version its chain
  started at (see ``archive.chain``).
- ``archive_audit_copied`` and ``archive_copied_checkpoints``: the audit trails of
  the stores this one was migrated or restored from, and how far the log's
  checkpoints came with them (``archive.copied_trails``).

The stores: ``archive.sqlite_recorder`` and ``archive.postgres_recorder``;
``archive.key_upgrade`` moves a store made with an earlier side index (keyed by
the text idempotency key, or by the slot; or by the second beside the log's own
(room, version) key; on PostgreSQL any side table) to this one in place. Both
recorders expose the same few extra queries, used by ``EventStore``.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError

from .errors import StoreError
from .idempotency import BUCKET

# Columns of a batch's log rows as the events table holds them: originator_id, originator_version, topic, state
LogColumns = tuple[list[str], list[int], list[str], list]
# Columns of a batch's side index rows: originator_id, whole second, originator_version, digest, occurred_at
# epoch seconds, chain link or None (rows zipped from columns: no Python step per row)
IndexColumns = tuple[list[str], list[int], list[int], list[int], list[float], list[bytes | None]]
# (position, originator_version, state, walk): walk is where the recorder's version-order walk of the stream
# stands at the row (the room's highest whole second so far), for the next page
RoomRow = tuple[int, int, bytes, int]
# (position, originator_version, state, whole second of occurred_at)
RangeRow = tuple[int, int, bytes, int]
# (stream, version, link, genesis version): a stream's chain head
HeadRow = tuple[str, int, bytes, int]
# A stream as stored: its last row's version (0 if none), the room's highest whole second so far, its chain head
StreamHead = tuple[int, int, HeadRow | None]

_FAR = 2**62  # seconds: beyond any time an event carries
BEFORE_ANY_SECOND = -_FAR


def bucket_spans(buckets: Iterable[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """The key ranges that hold these (room, bucket)s: (room, first second, second after the last), a run of
    a room's consecutive buckets as one range (a batch's events of a room fill its hours one after another:
    about 900 buckets in 100 ranges at 10,000 events, each range a seek and its bounds read by the look-up)."""
    spans: list[tuple[str, int, int]] = []
    for room, bucket in sorted(buckets):
        start, end = bucket * BUCKET, (bucket + 1) * BUCKET
        if spans and spans[-1][0] == room and spans[-1][2] == start:
            start = spans.pop()[1]
        spans.append((room, start, end))
    return spans


def range_params(oid: str, after: tuple[int, int] | None, limit: int, t_from: float | None, t_to: float | None):
    """A ranged page starts after ``after`` (second, version), or before the range's first second."""
    if after is None:
        after = (-_FAR if t_from is None else math.floor(t_from) - 1, 0)
    last = _FAR if t_to is None else math.floor(t_to)
    return [oid, *after, last, _lo(t_from), _hi(t_to), limit]


def _lo(t: float | None) -> float:
    return float("-inf") if t is None else t


def _hi(t: float | None) -> float:
    return float("inf") if t is None else t


def stream_version(version: int, head: HeadRow | None) -> int:
    """A stream's version, from its last stored event's and its chain head (a purge may have deleted its last
    events: its versions still go on from the head)."""
    return max(version, head[1]) if head else version


def checked_highs(stored: dict[str, StreamHead], expected: dict[str, int]) -> dict[str, int]:
    """Each stream's highest second so far, if every stream of a batch still stands at the version its rows were
    numbered from (read with the writers' lock held: another writer's batch moves it, and neither log has a
    unique (room, version) key to refuse a version taken twice); IntegrityError (the store retries) if not."""
    moved = [oid for oid, (version, _, head) in stored.items() if stream_version(version, head) != expected[oid]]
    if moved:
        raise IntegrityError(f"another writer appended to {moved[0]} (and {len(moved) - 1} more streams)")
    return {oid: high for oid, (_, high, _) in stored.items()}


def running_highs(rooms: Sequence[str], seconds: list[int], highs: dict[str, int]) -> list[int]:
    """Each event's room's highest second up to it, in the batch's order, from each room's before it."""
    # In time order (live capture, an import of a log), as nearly every batch is: each its own second.
    if seconds[0] >= max(highs.values()) and all(map(operator.le, seconds, itertools.islice(seconds, 1, None))):
        return seconds
    highs, out = dict(highs), []
    for room, second in zip(rooms, seconds):
        high = highs[room]
        if second > high:
            highs[room] = high = second
        out.append(high)
    return out


def check_copy_positions(positions: Sequence[int], last: int) -> None:
    """Copied events keep their positions: after the store's last one, ascending (``EventStore.append_copies``)."""
    if positions[0] <= last or any(a >= b for a, b in zip(positions, positions[1:])):
        raise StoreError(f"position {positions[0]} is taken or out of order here (the log ends at {last}): "
                         "copy into an empty store")


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lock_schema_ddl(curs: Any, schema: str) -> None:
    """Serialize table set-up in one PostgreSQL schema across processes (store and views alike):
    an advisory lock held until the caller's transaction ends."""
    curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chat-archive ddl {schema}",))
