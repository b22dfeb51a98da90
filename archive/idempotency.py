"""Where an event's idempotency key is stored: a slot with insert locality.

A key's slot is ``(room, bucket, digest)``: the room, the hour its event occurred
in, and 8 bytes of the SHA-256 of the event's idempotency key
(``archive.codec.idempotency_key``). The store's side index is keyed in each
room's time order and holds the digest, so a bucket is a range of that key
(``archive.recorders``): an append reads the digests of the buckets its
events fall in (and of the neighbouring ones near an edge) inside its write
transaction, holding the writers' lock, and a slot found there is a duplicate.
New events of a room land at the end of its range, in a few hot pages, and no
b-tree over random keys is written (what made the append rate fall as the store
grew), nor a second one for the time order.

The same stanza seen twice (live, in the join's history, in a MAM backfill, in
an import) does not always carry the same time: live capture stamps the receive
time on the archive's clock, replays carry the server's stamp. **Assumption: a
duplicate occurs within ``WINDOW`` (10 minutes) of its original's time.** That
is minutes of margin over clock skew between an NTP-synced server and archive,
and over delivery delay (seconds on a loaded server). An event within ``WINDOW``
of its bucket's edge is also looked up in the neighbouring bucket, so a
duplicate within ``WINDOW`` is always found, whichever bucket either copy fell
in. A later copy more than ``WINDOW`` from its original is still found when both
fall into the same hour or the same append batch, or when the later one lies
within ``WINDOW`` of the edge next to the original's hour; otherwise it is
stored a second time.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable
from typing import NamedTuple

try:
    # CPython's own SHA-256 (a private module of the standard library; 3.12 renamed it), not OpenSSL's: a
    # key is one or two blocks, and OpenSSL's set-up per hash costs more than hashing them (~0.55 us a key
    # against ~1 us on Python 3.11).
    from _sha256 import sha256
except ImportError:  # pragma: no cover (Python 3.12+, or a build without it)
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

from .codec import idempotency_keys
from .events import Event

BUCKET = 3600  # seconds: one hour of a room
WINDOW = 600  # seconds: how far apart two copies of one stanza may occur and still be found

# (room, bucket, digest): where a key is stored, or a neighbouring place to look it up
Slot = tuple[str, int, int]


def key_digest(key: str) -> int:
    """The key's 8-byte digest as a signed 64-bit integer (a column both stores hold natively): the first
    8 bytes of its SHA-256, big-endian."""
    return key_digests([key])[0]


def key_digests(keys: list[str]) -> list[int]:
    """Each key's ``key_digest``: the SHA-256s made in one comprehension and joined, their first 8 bytes read as
    every fourth number of the whole (no unpack nor tuple an event: ~450 instructions an event fewer, callgrind)."""
    digests = array("q", b"".join([sha256(key.encode()).digest() for key in keys]))
    if sys.byteorder == "little":  # the array reads the machine's order
        digests.byteswap()
    return digests[::4].tolist()


# A bucket is whole windows, so that an event's window tells both its bucket and whether it lies within ``WINDOW``
# of the bucket's edge: one rule over the batch's times, and ``Probe`` reads a batch's distinct (room, window)s
# (~3,000 of 10,000 events) instead of a bucket and a neighbour an event (~820 instructions an event fewer,
# callgrind). An event's window is floor(t / WINDOW), read from its whole second floor(t) (the same: WINDOW is
# whole seconds), which the side index holds too.
WINDOWS_A_BUCKET = BUCKET // WINDOW
assert WINDOWS_A_BUCKET * WINDOW == BUCKET


def windows_of(seconds: list[int]) -> list[int]:
    """The windows of whole epoch seconds (a rule over a batch's column: an integer division each, ~40 ns an event
    fewer than a float floor division of each time, and ~14 fewer than mapping int.__rfloordiv__, process CPU)."""
    return [second // WINDOW for second in seconds]


def bucket_of(window: int) -> tuple[int, int | None]:
    """A window's bucket and the bucket a duplicate may have been stored in when the window is its bucket's
    first or last (its events lie within ``WINDOW`` of the edge); None in the middle of the bucket."""
    bucket, part = divmod(window, WINDOWS_A_BUCKET)
    return bucket, bucket - 1 if part == 0 else bucket + 1 if part == WINDOWS_A_BUCKET - 1 else None


class Batch(NamedTuple):
    """Events to append as columns, aligned: each event's room, occurred_at in epoch seconds, its whole second
    (the floor), window (``windows_of``) and key digest. Columns, not a tuple per event: a batch is made and read column by
    column (one map of a rule over a column costs less than a loop)."""

    events: list[Event]
    rooms: list[str]
    times: list[float]
    seconds: list[int]
    windows: list[int]
    digests: list[int]

    def slots(self, i: int) -> list[Slot]:
        """Every slot event ``i``'s key may already be stored in: its own and, near an edge, the neighbour."""
        bucket, nearby = bucket_of(self.windows[i])
        own = (self.rooms[i], bucket, self.digests[i])
        return [own] if nearby is None else [own, (own[0], nearby, own[2])]

    def only(self, indexes: list[int]) -> Batch:
        return Batch(*([column[i] for i in indexes] for column in self))


def slotted(events: list[Event]) -> Batch:
    """Each distinct event of a batch once (by idempotency key), with its time and slot."""
    keys = idempotency_keys(events)
    # Nearly every batch holds each stanza once: a set of its keys tells, and the batch is taken as it is
    # (a dict of them and two lists copied from it cost ~60 ns an event more, process CPU).
    if len(set(keys)) == len(keys):
        return _batch(events, keys)
    unique: dict[str, Event] = {}
    for key, event in zip(keys, events):  # a stanza twice in the batch: its first copy is the one kept
        unique.setdefault(key, event)
    return _batch(list(unique.values()), list(unique))


def every_slot(events: list[Event]) -> Batch:
    """Each event of a batch with its time and slot, repeated keys included (a copy of events a store
    holds already: ``EventStore.append_copies``)."""
    return _batch(events, idempotency_keys(events))


def _batch(events: list[Event], keys: list[str]) -> Batch:
    times = [event.occurred_at.timestamp() for event in events]
    seconds = list(map(math.floor, times))
    return Batch(events, [event.room for event in events], times, seconds, windows_of(seconds), key_digests(keys))


class Probe:
    """The look-up of a batch's slots in the store: the buckets to read (``buckets``: room, bucket),
    and which of the slots found there are the batch's (``among``)."""

    def __init__(self, batch: Batch):
        self._batch = batch
        # Each distinct (room, window) once, in one pass over the batch (a room's events of a window share it),
        # then the buckets of those: their own and, for an edge's window, the neighbour.
        seen = [(room, *bucket_of(window)) for room, window in set(zip(batch.rooms, batch.windows))]
        self.buckets = {(room, bucket) for room, bucket, _ in seen}
        self.buckets.update([(room, nearby) for room, _, nearby in seen if nearby is not None])

    def among(self, rows: Iterable[tuple[str, int, int]]) -> set[Slot]:
        """The batch's slots among the side index rows (room, second, digest) of the buckets read. Those
        hold the rooms' earlier events of the hours, nearly all with digests the batch does not have: a
        row's slot is made only when its digest is one of the batch's, and the batch's slots only for
        the digests found."""
        batch = self._batch
        digests = set(batch.digests)
        stored = {(room, second // BUCKET, digest) for room, second, digest in rows if digest in digests}
        if not stored:
            return set()
        found = {slot[2] for slot in stored}
        return stored.intersection(
            [slot for i, digest in enumerate(batch.digests) if digest in found for slot in batch.slots(i)]
        )
