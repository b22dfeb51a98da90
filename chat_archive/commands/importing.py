"""`import FILE`: events from JSON lines into the store; a backup from `export-log` is restored as it was."""

from __future__ import annotations

import argparse
import io
import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO

from archive.errors import ChatArchiveError, EventDecodeError, StoreError
from archive.events import ChainHead, EventsPurged, Recorded
from archive.store import MAX_BATCH, EventStore

from ..bootstrap import open_store
from ..log_file import PURGE_KINDS, Entry, LogFile
from ..migration import carry_purged_heads, copy_records, purged_spans


def register(subparsers: argparse._SubParsersAction) -> None:
    importer = subparsers.add_parser(
        "import", help="append events from JSON lines (as `chat-archive log` prints them, or bare events; "
        "gzip-compressed or not); a backup from `export-log` is restored at its positions and versions; idempotent",
    )
    importer.add_argument("file", help="a file of JSON lines (.gz or plain), or - for standard input")
    importer.set_defaults(handler=import_events)


@dataclass
class _Survey:
    """What a first reading of the whole file found: a bad file imports nothing."""

    source: str
    numbered: bool = True  # every line holds its event's position and version: a backup
    purges: list[EventsPurged] = field(default_factory=list)
    purge_line: int | None = None  # the first line of a purge's record
    last_position: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # stream -> its last version in the lines

    def read(self, entry: Entry) -> None:
        if isinstance(entry.event, PURGE_KINDS) and self.purge_line is None:
            self.purge_line = entry.line
        if type(entry.event) is EventsPurged:
            self.purges.append(entry.event)
        self.numbered = self.numbered and entry.position is not None and entry.version is not None
        if not self.numbered:
            return
        room, before = entry.event.room, self.versions.get(entry.event.room, 0)
        if entry.position <= self.last_position:
            self._disorder(entry, f"position {entry.position} after position {self.last_position}")
        if entry.version <= before:
            self._disorder(entry, f"version {entry.version} of {room} after its version {before}")
        self.last_position, self.versions[room] = entry.position, entry.version

    def _disorder(self, entry: Entry, what: str):
        raise EventDecodeError(f"{self.source}, line {entry.line}: {what}: a backup's lines are in log order, "
                               "each room's versions ascending")


def import_events(args: argparse.Namespace, config) -> int:
    source = "standard input" if args.file == "-" else args.file
    opener = _stdin_opener() if args.file == "-" else _file_opener(args.file)
    survey = _Survey(source)
    with opener() as raw:
        log = LogFile(raw, source)
        for entry in log.entries():
            survey.read(entry)
    if not survey.numbered and survey.purge_line is not None:
        raise EventDecodeError(
            f"{source}, line {survey.purge_line}: a purge's record names events by the positions and versions of "
            "the store it came from, which this file's lines do not hold: restore a backup written by this "
            "version's `chat-archive export-log`"
        )
    with open_store(config) as store:
        if survey.numbered and survey.last_position:
            return _restore(store, opener, survey, _expected_heads(survey, log))
        with opener() as raw:
            entries = LogFile(raw, source).entries()
            new = seen = 0
            while batch := [e.event for e in itertools.islice(entries, MAX_BATCH)]:
                stored = len(store.append(batch))
                new, seen = new + stored, seen + len(batch) - stored
    print(f"imported {new} new events from {source} ({seen} already archived)")
    return 0


def _expected_heads(survey: _Survey, log: LogFile) -> dict[str, ChainHead]:
    """The trailer's heads the restored store must have, checked against the lines: a stream whose last events
    were purged goes on at its head, which only the trailer gives (without it, its next event would take a
    purged version). A head beyond the lines and purges (an export of a store being written: the heads are
    read after the lines) is left out."""
    heads = {head.stream: head for head in log.heads}
    purged = purged_spans(survey.purges)
    expected = {}
    for stream in survey.versions.keys() | purged.keys():
        written = survey.versions.get(stream, 0)
        last = max([written, *(span.last for span in purged.get(stream, []))])
        head = heads.get(stream)
        if (head is None and last > written) or (head is not None and head.version < last):
            raise EventDecodeError(f"{survey.source}: its trailer gives {stream} the head version "
                                   f"{head.version if head else 'none'}, its lines and purge records {last}")
        if head is not None and head.version == last:
            expected[stream] = head
    return expected


def _restore(store: EventStore, opener, survey: _Survey, heads: dict[str, ChainHead]) -> int:
    with opener() as raw:
        _check_prefix(store, LogFile(raw, survey.source).entries())
    purged = purged_spans(survey.purges)
    with opener() as raw:
        log = LogFile(raw, survey.source)
        copies = ((e.version, Recorded(e.position, e.event)) for e in log.entries())
        read, new, _ = copy_records(copies, store, purged)
    carry_purged_heads(heads.values(), store, purged)
    restored = {head.stream: head for head in store.chain_heads()}
    differ = [stream for stream, head in heads.items() if restored.get(stream) != head]
    if differ:
        raise StoreError(f"the restored chain heads differ from the backup's trailer in {', '.join(differ)}: the "
                         "file's events or its trailer were altered")
    print(f"restored {new} new events from {survey.source} at their positions and versions ({read - new} already "
          "archived)")
    return 0


def _check_prefix(store: EventStore, entries: Iterator[Entry]) -> None:
    """A backup goes into an empty store, or one holding the start of it (a restore stopped part way)."""
    for version, record in store.read_log_versions(page_size=MAX_BATCH):
        entry = next(entries, None)
        if entry is None or (entry.position, entry.version, entry.event.room) != (
                record.position, version, record.event.room):
            raise StoreError(f"the store holds events the backup does not begin with (position {record.position}): "
                             "restore it into an empty store")


def _file_opener(path: str) -> Callable[[], AbstractContextManager[BinaryIO]]:
    def opener() -> AbstractContextManager[BinaryIO]:
        try:
            return open(path, "rb")
        except OSError as e:
            raise ChatArchiveError(f"cannot read {path}: {e.strerror}") from e
    return opener


def _stdin_opener() -> Callable[[], AbstractContextManager[BinaryIO]]:
    data = sys.stdin.buffer.read()  # read twice, like a file: first checked whole
    return lambda: io.BufferedReader(io.BytesIO(data))
