"""Copying the event log from one store to another (`chat-archive migrate`), resumably, and checking it.

Events are appended to the target in the source's log order, page by page, each
at the log position and the version it has in the source (``EventStore.append_copies``):
what names an event by its position (a purge's ``PurgeApplied``, a replay cursor)
names the same one in the target, and a purge's gap in a stream stays a gap, the chain resuming after it from the link the purge
recorded, so every stream has the same versions and (the chain being a function
of the previous link, the version and the stored bytes) the same hash-chain links
as in the source, and the copied purge records and checkpoints hold in the target.
A stream whose last events were purged gets the source's head, when purge records
cover the versions after its last event. After each committed page the source
position reached is written to a small progress file; an interrupted copy resumes
from there. Without the file (or with a stale one) nothing is lost either: the
copy skips whatever the target already holds.

The check compares every stream in both stores: the events it holds (a purged
store holds fewer than its head's version), its head's version and its chain link
(a stream chained only from a later version, in a store older than its chains, is
chained from that version in the copy too).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from archive import chain
from archive.errors import StoreError
from archive.events import AUDIT_STREAM, ChainHead, EventsPurged, PurgedSpan, Recorded, copied_trail, is_audit_trail
from archive.integrity import compliance_records
from archive.store import MAX_BATCH, CopiedChains, EventStore

PAGE_SIZE = MAX_BATCH


@dataclass(frozen=True)
class CopyReport:
    read: int  # events read from the source
    appended: int  # of those, new to the target
    position: int  # source position reached
    audit_records: int = 0  # the source's audit records new to the target's copies of its trails


@dataclass(frozen=True)
class CheckReport:
    events: int
    streams: int
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def progress_file(directory: Path, source_url: str, target_url: str) -> Path:
    """Where the copy from ``source_url`` to ``target_url`` records how far it got."""
    digest = hashlib.sha256(f"{source_url}\x00{target_url}".encode()).hexdigest()[:12]
    return directory / f"migrate-{digest}.json"


def read_progress(path: Path) -> int:
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["position"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _write_progress(path: Path, position: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"position": position}), encoding="utf-8")
    os.replace(temporary, path)


def copy_log(
    source: EventStore,
    target: EventStore,
    progress: Path,
    *,
    on_page: Callable[[int], None] | None = None,
    page_size: int = PAGE_SIZE,
) -> CopyReport:
    """Append the source's events after the recorded progress to the target, at their positions and versions;
    then the heads of streams whose last events were purged, and the audit trail. Nothing is written unless each of
    the source's audit trails is the one its copy in the target was copied from."""
    _check_audit_copies(source, target)
    after = read_progress(progress)
    purged = purged_spans(compliance_records(source, EventsPurged))

    def page_done(position: int) -> None:
        _write_progress(progress, position)
        if on_page:
            on_page(position)

    chains = copied_chains(purged, source.chain_heads())
    read, appended, position = copy_records(source.read_log_versions(after, page_size=page_size), target, chains,
                                            source.copied_checkpoints(), page_done, page_size)  # fmt: skip
    if on_page and not read:
        on_page(after)
    carry_purged_heads(source.chain_heads(), target, purged)
    return CopyReport(read, appended, position or after, _copy_audit(source, target))


def copied_chains(purged: dict[str, list[PurgedSpan]], heads: Iterable[ChainHead]) -> CopiedChains:
    """The source's chains as the copy goes on with them: from its purges' links, from its chains' first versions."""
    resume_links = {(s.stream, s.last + 1): bytes.fromhex(s.link) for spans in purged.values() for s in spans if s.link}
    return CopiedChains(resume_links, {head.stream: head.genesis_version for head in heads})


def copy_records(
    records: Iterable[tuple[int, Recorded]], target: EventStore, chains: CopiedChains, marks: Mapping[str, int],
    page_done: Callable[[int], None] = lambda position: None, page_size: int = PAGE_SIZE,
) -> tuple[int, int, int]:
    """Append (version, record) pairs, in log order, to the target at their positions and versions, page by
    page, skipping those it holds; (read, appended, the last position read). ``marks``: the source's own of the
    checkpoints that came to it with its copied trails (``archive.copied_trails.copied_checkpoint_marks``)."""
    read = appended = position = 0
    records = iter(records)
    while page := list(itertools.islice(records, page_size)):
        new = target.append_copies(page, chains, marks)  # with the marks of the checkpoints it brings
        appended += len(new)
        read += len(page)
        position = page[-1][1].position
        page_done(position)
    return read, appended, position


def purged_spans(records: Iterable[EventsPurged]) -> dict[str, list[PurgedSpan]]:
    """Every stream's purged spans, as purge records name them, in version order."""
    spans: dict[str, list[PurgedSpan]] = {}
    for record in records:
        for span in record.spans:
            spans.setdefault(span.stream, []).append(span)
    return {stream: sorted(found, key=lambda s: s.first) for stream, found in spans.items()}


def carry_purged_heads(heads: Iterable[ChainHead], target: EventStore, purged: dict[str, list[PurgedSpan]]) -> None:
    """A stream whose last events were purged goes on in the target at the source's head: carried when
    purge records cover every version after the target's last one and end at the head's link (anything
    else stays a mismatch for the check to report). So does a chain a purge began after a stream's last
    version (``delete_versions``: a stream archived before chaining), which no copied event carries."""
    theirs = {head.stream: head.version for head in target.chain_heads()}
    carried = [
        head for head in heads
        if not is_audit_trail(head.stream) and theirs.get(head.stream, 0) < head.version
        and covered(purged.get(head.stream, []), _last_copied(target, head, theirs.get(head.stream, 0)), head)
    ]  # fmt: skip
    if carried:
        target.carry_heads(carried)


def _last_copied(target: EventStore, head: ChainHead, chained: int) -> int:
    """The target's last version of ``head``'s stream that the purge records need not cover: its chain
    head's, or for a chain not begun yet (every copied event below its genesis: none carries a head; rare)
    its last stored event's."""
    if head.genesis_version <= head.version:
        return chained
    return max(chained, max(target.stream_link_map(head.stream), default=0))


def covered(spans: list[PurgedSpan], last_copied: int, head: ChainHead) -> bool:
    """Whether purge spans (in version order) cover every version after ``last_copied`` up to ``head``."""
    if last_copied == head.version:  # a chain not begun yet, after the copied events (``_last_copied``)
        return head.genesis_version == head.version + 1 and head.link == chain.genesis(head.stream).hex()
    expected = last_copied + 1
    for span in spans:
        if span.last < expected:
            continue
        if span.first > expected:
            return False
        if span.last >= head.version:
            # A span of events archived before the chain began has no link: its purge began the chain after it.
            link = span.link or (chain.genesis(head.stream).hex() if head.genesis_version > span.last else "")
            return span.last == head.version and link == head.link
        expected = span.last + 1
    return False


def _check_audit_copies(source: EventStore, target: EventStore) -> None:
    """Each of the source's audit trails is the one its copy in the target was copied from: the same link at the
    copy's last record (a store restored from the source's backup has a trail of its own, begun anew)."""
    for trail in source.audit_trails():
        copy = copied_trail(trail)
        seq, _ = target.copied_head(copy)
        target.check_copy(copy, source.audit_link(trail, seq), f"the source's {trail}")


def _copy_audit(source: EventStore, target: EventStore) -> int:
    """The audit trails (who read what) are not part of the log: each of the source's follows, record by record, into
    its copy in the target (``archive.copied_trails``), after the records the copy holds. Reads made on the target
    are in its own trail, and take none of the source's numbers."""
    copied = 0
    for trail in source.audit_trails():
        copy = copied_trail(trail)
        seq, _ = target.copied_head(copy)
        copied += target.copy_audit(copy, source.read_audit(after=seq, trail=trail), link=source.audit_link(trail, seq))
    return copied


def check(source: EventStore, target: EventStore) -> CheckReport:
    """Every stream of the source holds as many events in the target, with the same chain head; every audit trail of
    the source is its copy's (the target's own trail holds the reads made on it)."""
    theirs = {head.stream: head for head in target.chain_heads() if head.stream != AUDIT_STREAM}
    mine, copied = source.event_counts(), target.event_counts()
    mismatches = []
    heads = source.chain_heads()
    for head in heads:
        copy = theirs.pop(copied_trail(head.stream) if is_audit_trail(head.stream) else head.stream, None)
        if copy is None or copy.version != head.version:
            found = copy.version if copy else 0
            mismatches.append(f"{head.stream}: the head is version {head.version} in the source, {found} in the target")
        elif mine.get(head.stream, 0) != copied.get(head.stream, 0):
            mismatches.append(f"{head.stream}: {mine.get(head.stream, 0)} events in the source, "
                              f"{copied.get(head.stream, 0)} in the target")
        elif copy.link != head.link or copy.genesis_version != head.genesis_version:
            mismatches.append(f"{head.stream}: the hash chains differ at version {head.version}")
    mismatches += [f"{stream}: in the target only" for stream in sorted(theirs)]
    if not heads and source.head():
        raise StoreError("the source store keeps no chain heads to check the copy against")
    return CheckReport(sum(mine.values()), len(heads), mismatches)
