"""Where an event's idempotency key is stored: a slot with insert locality.

A key's slot is ``(room, bucket, digest)``: the room, the hour its event occurred
in, and 8 bytes of the SHA-256 of the event's idempotency key
(``archive.codec.idempotency_key``). The store's side index is keyed in each
room's time order (room, whole second, version) and holds the digest, so a
bucket is one range of that key: an append reads the digests of the buckets its
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

import struct
from collections.abc import Iterable
from hashlib import sha256

from .codec import idempotency_key
from .events import Event

BUCKET = 3600  # seconds: one hour of a room
WINDOW = 600  # seconds: how far apart two copies of one stanza may occur and still be found

# (room, bucket, digest): where a key is stored, or a neighbouring place to look it up
Slot = tuple[str, int, int]


def key_digest(key: str) -> int:
    """The key's 8-byte digest as a signed 64-bit integer (a column both stores hold natively): the first
    8 bytes of its SHA-256, big-endian."""
    return _first_int64(sha256(key.encode()).digest())[0]


_first_int64 = struct.Struct(">q").unpack_from


def bucket_of(t: float) -> int:
    """The bucket of an epoch time in seconds."""
    return int(t // BUCKET)


def neighbour(t: float, bucket: int) -> int | None:
    """The bucket a duplicate of an event at ``t`` may have been stored in, when ``t`` lies
    within ``WINDOW`` of its own bucket's edge; None in the middle of the bucket."""
    offset = t - bucket * BUCKET
    if offset < WINDOW:
        return bucket - 1
    if offset >= BUCKET - WINDOW:
        return bucket + 1
    return None


# An event to append: (event, room, occurred_at in epoch seconds, bucket, digest, neighbouring bucket or None)
Entry = tuple[Event, str, float, int, int, int | None]


def slotted(events: list[Event]) -> list[Entry]:
    """Each distinct event of a batch once (by idempotency key), with its time and slot."""
    keys = list(map(idempotency_key, events))
    unique = dict(zip(keys, events))
    if len(unique) < len(events):  # a stanza twice in the batch: its first copy is the one kept
        unique = {}
        for key, event in zip(keys, events):
            unique.setdefault(key, event)
    return _entries(unique.items())


def every_slot(events: list[Event]) -> list[Entry]:
    """Each event of a batch with its time and slot, repeated keys included (a copy of events a store
    holds already: ``EventStore.append_copies``)."""
    return _entries(zip(map(idempotency_key, events), events))


def _entries(keyed: Iterable[tuple[str, Event]]) -> list[Entry]:
    entries = []
    for key, event in keyed:
        t = event.occurred_at.timestamp()
        bucket = bucket_of(t)
        entries.append((event, event.room, t, bucket, key_digest(key), neighbour(t, bucket)))
    return entries


def probes(entries: list[Entry]) -> list[Slot]:
    """Every slot an entry's key may already be stored in: its own and, near an edge, the neighbour."""
    own = [(e[1], e[3], e[4]) for e in entries]
    return own + [(e[1], e[5], e[4]) for e in entries if e[5] is not None]


class Probe:
    """The look-up of a batch's slots in the store: the buckets to read (``buckets``: room, bucket),
    and which of the slots found there are the batch's (``among``)."""

    def __init__(self, entries: list[Entry]):
        self._entries = entries
        self.buckets = {(e[1], e[3]) for e in entries}
        self.buckets.update([(e[1], e[5]) for e in entries if e[5] is not None])

    def among(self, stored: set[Slot]) -> set[Slot]:
        """The batch's slots among these stored ones. The buckets read hold the rooms' earlier events
        of the hour, nearly all with digests the batch does not have: the slots are made and compared
        only for the entries whose digest was found."""
        found = {slot[2] for slot in stored}
        if not found:
            return set()
        return stored.intersection(probes([e for e in self._entries if e[4] in found]))
