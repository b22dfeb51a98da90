"""eventsourcing application recorders extended with the archive's side tables: what both stores share.

The library's ``stored_events`` table is kept exactly as eventsourcing defines
it. Beside it, in the same transaction as every insert, the archive writes:

- ``archive_event_index``: one row per event, keyed by its idempotency slot
  ``(room, bucket, digest)`` (``archive.idempotency``: unique, so the same key is
  never committed twice in one bucket; a look-up of the neighbouring bucket in
  the same transaction covers a bucket's edges), with its version, its
  ``occurred_at`` as epoch seconds (time-range reads of a room walk an index on
  it) and its hash-chain link;
- ``archive_rooms``: every room JID (originator id) that has events;
- ``archive_audit``: the audit trail (``archive.audit``), outside the event log so
  that reads never become events the projections must step over;
- ``archive_chain_heads``: each stream's last link and the version its chain
  started at (see ``archive.chain``).

The stores: ``archive.sqlite_recorder`` and ``archive.postgres_recorder``;
``archive.key_upgrade`` moves a store made with the earlier side index (a text
idempotency key) to this one in place. Both recorders expose the same few extra
queries, used by ``EventStore``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

# (originator_id, originator_version, topic, state): an event as the events table holds it
EventRow = tuple[str, int, str, bytes]
# (originator_id, bucket, digest, originator_version, occurred_at epoch seconds, chain link or None)
IndexRow = tuple[str, int, int, int, float, bytes | None]
# (position, originator_version, state)
RoomRow = tuple[int, int, bytes]
# (position, originator_version, state, whole second of occurred_at)
RangeRow = tuple[int, int, bytes, int]
# (stream, version, link, genesis version): a stream's chain head
HeadRow = tuple[str, int, bytes, int]

_FAR = 2**62  # seconds: beyond any time an event carries


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


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def lock_schema_ddl(curs: Any, schema: str) -> None:
    """Serialize table set-up in one PostgreSQL schema across processes (store and views alike):
    an advisory lock held until the caller's transaction ends."""
    curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chat-archive ddl {schema}",))
