"""Checkpoints of every stream's chain head, and the store-wide integrity check.

A checkpoint (``ChainCheckpoint`` in the compliance stream, itself chained) commits
to every stream's head at one moment: a later deletion of a stream's last events,
which leaves no broken link behind it, still contradicts the checkpoint.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from msgspec.structs import replace as replace_struct

from .chain import Break, WalkResult, walk_chain
from .events import COMPLIANCE_STREAM, ChainCheckpoint, ChainHead, EventsPurged, PurgedSpan, is_audit_trail
from .records import COPIED
from .store import EventStore
from .times import utcnow


def write_checkpoint(store: EventStore, since: ChainCheckpoint | None = None) -> ChainCheckpoint | None:
    """Record the chain head of every stream (the compliance stream's own excepted: the record moves it)
    that moved since checkpoint ``since`` (every stream's when None); None if none moved. Pass the last
    checkpoint written to keep each one small: verification reads them all."""
    heads = tuple(h for h in store.chain_heads() if h.stream != COMPLIANCE_STREAM)
    if since is not None:
        heads = tuple(set(heads) - set(since.heads))
    if not heads:
        return None
    now = utcnow()
    checkpoint = ChainCheckpoint(room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=now, heads=tuple(sorted(
        heads, key=lambda h: h.stream)))
    store.append([checkpoint])
    return checkpoint


class Checkpoints:
    """Successive checkpoints of one process: the first covers every stream, each later one the
    streams that moved since (``write_checkpoint``)."""

    def __init__(self, store: EventStore):
        self._store = store
        self._heads: dict[str, ChainHead] = {}

    @property
    def written(self) -> bool:
        """Whether one was written (a store that holds nothing has nothing to checkpoint)."""
        return bool(self._heads)

    def write(self) -> ChainCheckpoint | None:
        previous = ChainCheckpoint(room=COMPLIANCE_STREAM, occurred_at=utcnow(), recorded_at=utcnow(),
                                   heads=tuple(self._heads.values())) if self._heads else None
        checkpoint = write_checkpoint(self._store, previous)
        if checkpoint is not None:
            self._heads.update({h.stream: h for h in checkpoint.heads})
        return checkpoint


def compliance_records(store: EventStore, kind: type) -> Iterator:
    """The compliance stream's events of one type, oldest first."""
    for record in store.read_room(COMPLIANCE_STREAM):
        if type(record.event) is kind:
            yield record.event


@dataclass(frozen=True)
class IntegrityReport:
    """``not_checkpointed``: the events of the streams verified after the last checkpoint naming each (every event
    before the first): a deletion of a stream's last events is found against a checkpoint only, so these are covered
    by their links alone until the next checkpoint."""

    streams: list[WalkResult]
    checkpoints: int
    not_checkpointed: int = 0
    last_checkpoint_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return all(s.broken is None for s in self.streams)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.streams)

    @property
    def unchained(self) -> int:
        return sum(s.unchained for s in self.streams)


def verify_integrity(store: EventStore, stream: str | None = None,
                     keep: Mapping[str, Collection[int]] | None = None) -> IntegrityReport:
    """Recompute every stream's chain (or one's, or those of ``keep``) against its links, its recorded head,
    every checkpoint and every purge record; each result names its stream's first broken link, and holds the
    full links of the versions ``keep`` names for it (``chain.WalkResult.kept``)."""
    checkpoints, checkpointed, last_at = _checkpointed_heads(store)
    purged: dict[str, dict[int, PurgedSpan]] = {}
    for purge in compliance_records(store, EventsPurged):
        for span in purge.spans:
            purged.setdefault(span.stream, {})[span.first] = span
    heads = {h.stream: h for h in store.chain_heads()}
    # Counted in the log itself before the walks (which then see as many rows or more, as appends go on): SQLite
    # walks a stream through its side index, which a row written behind the store's back need not be in.
    logged = store.event_counts()
    names = sorted(set(store.streams()) | heads.keys() | checkpointed.keys())
    if stream is not None:
        names = [stream] if stream in names else []
    if keep is not None:
        names = [name for name in names if name in keep]
    results = []
    for name in names:
        rows = list(store.stream_links(name))
        result = walk_chain(
            name,
            rows,
            _genesis_version(name, rows, heads.get(name), checkpointed.get(name, [])),
            heads.get(name),
            purged.get(name),
            checkpointed.get(name, []),
            frozenset((keep or {}).get(name, ())),
        )
        unwalked = logged.get(name, 0) - len(rows)
        if result.broken is None and unwalked > 0:
            result = replace(result, broken=Break(name, 0, None, f"the log holds {unwalked} more event(s) than "
                                                              "its index: written behind the store's back"))
        results.append(result)
    return IntegrityReport(results, checkpoints, sum(not_checkpointed(heads.get(n), checkpointed.get(n, []))
                                                     for n in names if n != COMPLIANCE_STREAM), last_at)


def not_checkpointed(head: ChainHead | None, checkpoints: list[ChainHead]) -> int:
    """How many of a stream's versions came after the last checkpoint naming it (all, with none). (The compliance
    stream, which holds the checkpoints, is named by none: the checkpoint that would cover it moves it on.)"""
    if head is None:
        return 0
    return max(0, head.version - max((c.version for c in checkpoints), default=0))


def _checkpointed_heads(store: EventStore) -> tuple[int, dict[str, list[ChainHead]], datetime | None]:
    """How many checkpoints the log holds, their heads by the stream each names here, and when the last was written. A checkpoint that came
    with a copied audit trail (at or before its mark: ``archive.copied_trails``) was written by the store that trail
    was copied from, and names that store's trails: an audit trail it names is, here, its copy (a copy's copy, for
    one that came through two copies). A link names no store (a copy starts from its origin's genesis), so nothing
    else may give a head to a copy: the store's own checkpoints stay with its own trails."""
    marks = store.copied_checkpoints()
    count, checkpointed, last_at = 0, {}, None
    for record in store.read_room(COMPLIANCE_STREAM):
        if type(record.event) is not ChainCheckpoint:
            continue
        count, last_at = count + 1, record.event.recorded_at
        copies = max((trail.count(COPIED) for trail, last in marks.items() if record.position <= last), default=0)
        for head in record.event.heads:
            if copies and is_audit_trail(head.stream):
                head = replace_struct(head, stream=head.stream + COPIED * copies)
            checkpointed.setdefault(head.stream, []).append(head)
    return count, checkpointed, last_at


def _genesis_version(stream, rows, head: ChainHead | None, checkpoints: list[ChainHead]) -> int:
    """Where the stream's chain began: the earliest that its head, any checkpoint or any stored
    link says, so that erasing the head row or old links cannot move the start forward."""
    candidates = [h.genesis_version for h in (head, *checkpoints) if h is not None]
    candidates += [next((r.version for r in rows if r.link is not None), None) or 1 << 62]
    return min(candidates) if candidates else 1

