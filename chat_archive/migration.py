"""Copying the event log from one store to another (`chat-archive migrate`), resumably, and checking it.

Events are appended to the target in the source's log order, page by page, so
every stream gets the same versions and (the chain being a function of the
previous link, the version and the stored bytes) the same hash-chain links as in
the source. After each committed page the source position reached is written to
a small progress file; an interrupted copy resumes from there. Without the file
(or with a stale one) nothing is lost either: the store's idempotent append
skips whatever the target already holds.

The check compares every stream's head in both stores: its version (the count of
its events) always, its chain link where the source's chain starts at the
stream's first event (a stream chained only from a later version, in a store
older than its chains, has other links by construction).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from archive.errors import StoreError
from archive.events import AUDIT_STREAM
from archive.store import MAX_BATCH, EventStore

PAGE_SIZE = MAX_BATCH


@dataclass(frozen=True)
class CopyReport:
    read: int  # events read from the source
    appended: int  # of those, new to the target
    position: int  # source position reached


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
    """Append the source's events after the recorded progress to the target; then its audit trail."""
    after = read_progress(progress)
    read = appended = 0
    position = after
    page = []
    for record in source.read_log(after, page_size=page_size):
        page.append(record.event)
        position = record.position
        if len(page) == page_size:
            appended += len(target.append(page, batch_size=page_size))
            read += len(page)
            page = []
            _write_progress(progress, position)
            if on_page:
                on_page(position)
    if page:
        appended += len(target.append(page, batch_size=page_size))
        read += len(page)
        _write_progress(progress, position)
    if on_page:
        on_page(position)
    _copy_audit(source, target)
    return CopyReport(read, appended, position)


def _copy_audit(source: EventStore, target: EventStore) -> None:
    """The audit trail (who read what) is not part of the log: it follows, record by record."""
    copied = {head.stream: head.version for head in target.chain_heads()}.get(AUDIT_STREAM, 0)
    for record in source.read_audit(after=copied):
        target.append_audit(record.event)


def check(source: EventStore, target: EventStore) -> CheckReport:
    """Every stream of the source has as many events in the target, and the same chain head."""
    theirs = {head.stream: head for head in target.chain_heads()}
    mismatches = []
    events = 0
    heads = source.chain_heads()
    for head in heads:
        copy = theirs.pop(head.stream, None)
        if head.stream != AUDIT_STREAM:
            events += head.version
        if copy is None or copy.version != head.version:
            found = copy.version if copy else 0
            mismatches.append(f"{head.stream}: {head.version} events in the source, {found} in the target")
        elif head.genesis_version == 1 and copy.link != head.link:
            mismatches.append(f"{head.stream}: the hash chains differ at version {head.version}")
    mismatches += [f"{stream}: in the target only" for stream in sorted(theirs)]
    if not heads and source.head():
        raise StoreError("the source store keeps no chain heads to check the copy against")
    return CheckReport(events, len(heads), mismatches)
