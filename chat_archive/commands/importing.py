"""`import FILE`: events from JSON lines into the store; a backup from `export-log` is restored as it was."""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO

import msgspec

from archive import chain
from archive.codec import to_msgpack
from archive.errors import ChatArchiveError, EventDecodeError, StoreError
from archive.events import (
    ChainCheckpoint, ChainHead, ContentRead, Event, EventsPurged, Recorded, copied_trail, is_audit_trail, misplaced,
)
from archive.records import COPIED
from archive.room_names import RoomNames
from archive.store import MAX_BATCH, EventStore

from . import counted
from ..bootstrap import open_store
from ..log_file import MAX_LINE_BYTES, PURGE_KINDS, Entry, LogFile
from ..migration import carry_purged_heads, copied_chains, copy_records, purged_spans


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
    misplaced: str | None = None  # the first line whose event names a stream it cannot go to, and why
    last_position: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # stream -> its last version in the lines
    trails: dict[str, int] = field(default_factory=dict)  # audit trail -> its last record's number in the lines
    links: dict[str, bytes] = field(default_factory=dict)  # audit trail -> its chain's link at its last record
    wanted: dict[str, int] = field(default_factory=dict)  # audit trail -> a record whose link ``found`` keeps
    found: dict[str, bytes] = field(default_factory=dict)

    def read(self, entry: Entry) -> None:
        if entry.trail is not None:
            return self._read_record(entry)
        if self.trails:
            self._disorder(entry, "an event after the audit records")
        if isinstance(entry.event, PURGE_KINDS) and self.purge_line is None:
            self.purge_line = entry.line
        if type(entry.event) is EventsPurged:
            self.purges.append(entry.event)
        if self.misplaced is None and (problem := misplaced(entry.event)):
            self.misplaced = f"{self.source}, line {entry.line}: {problem}"
        self.numbered = self.numbered and entry.position is not None and entry.version is not None
        if not self.numbered:
            return
        room, before = entry.event.room, self.versions.get(entry.event.room, 0)
        if entry.position <= self.last_position:
            self._disorder(entry, f"position {entry.position} after position {self.last_position}")
        if entry.version <= before:
            self._disorder(entry, f"version {entry.version} of {room} after its version {before}")
        self.last_position, self.versions[room] = entry.position, entry.version

    def _read_record(self, entry: Entry) -> None:
        """An audit record's line: a backup holds each trail whole, its records numbered from 1 (``copy_audit``)."""
        if not is_audit_trail(entry.trail) or not isinstance(entry.event, ContentRead):
            raise EventDecodeError(f"{self.source}, line {entry.line}: not an audit trail's record")
        before = self.trails.get(entry.trail, 0)
        if entry.position != before + 1:
            self._disorder(entry, f"record {entry.position} of {entry.trail} after its record {before}")
        self.trails[entry.trail] = entry.position
        link = self.links.get(entry.trail) or chain.genesis(entry.trail)
        link = self.links[entry.trail] = chain.link(link, entry.position, to_msgpack(entry.event))
        if self.wanted.get(entry.trail) == entry.position:
            self.found[entry.trail] = link

    def _disorder(self, entry: Entry, what: str):
        raise EventDecodeError(f"{self.source}, line {entry.line}: {what}: a backup's lines are in log order, "
                               "each room's versions ascending")


def import_events(args: argparse.Namespace, config) -> int:
    source = "standard input" if args.file == "-" else args.file
    opener = _file_opener(args.file) if os.path.isfile(args.file) else _spooled_opener(args.file)
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
    # A backup holds what its store held, and is restored as it was; other lines go in as new events.
    if not survey.numbered and survey.misplaced:
        raise EventDecodeError(f"{survey.misplaced}: nothing was imported")
    backup = survey.numbered and bool(survey.last_position or survey.trails)
    if log.oversized is not None and not backup:
        raise EventDecodeError(f"{source}, line {log.oversized}: longer than {MAX_LINE_BYTES >> 20} MiB, the most a line "
                               "of new events may hold: nothing was imported")
    if survey.trails and not backup:
        raise EventDecodeError(f"{source}: audit records are restored from a backup written by `chat-archive "
                               "export-log` only, whose every line holds its event's position and version")
    if backup and not log.ends_with_trailer:
        raise EventDecodeError(f"{source}: a backup ends with its trailer (count, SHA-256, chain heads): this one "
                               "is cut short or has lines after it")
    with open_store(config, create=True) as store:
        if backup:
            return _restore(store, opener, survey, log)
        with opener() as raw:
            imported = _NewEvents(store)
            for entry in LogFile(raw, source).entries():
                imported.add(entry.event)
            imported.flush()
    print(f"imported {counted(imported.new, 'new event')} from {source} ({imported.seen} already archived)"
          f"{imported.checkpoints_said()}")
    return 0


class _NewEvents:
    """Lines of new events (not a backup) into the store, in batches, each event in its room as archived. A
    checkpoint of the store the lines came from vouches for that store's chains: its audit trail's, which the lines
    do not hold, and its rooms' versions and links, which the events take afresh here. Imported whole, `verify
    --integrity` took it for this store's own and reported those chains broken. Its heads that hold here are kept
    (``heads_holding``: a whole log moved into an empty store, or a backup written before backups held versions,
    keeps its checkpoints); one with none left is left out, as is every one after an event archived before (an
    import repeated: none is written twice)."""

    def __init__(self, store: EventStore):
        self.store, self.names = store, RoomNames(store.rooms())
        self.new = self.seen = self.trimmed = self.left_out = 0
        self.batch: list[Event] = []

    def add(self, event: Event) -> None:
        if type(event) is ChainCheckpoint:
            return self._checkpoint(event)
        self.batch.append(_as_archived(event, self.names))
        if len(self.batch) >= MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        stored = len(self.store.append(self.batch)) if self.batch else 0
        self.new, self.seen, self.batch = self.new + stored, self.seen + len(self.batch) - stored, []

    def _checkpoint(self, checkpoint: ChainCheckpoint) -> None:
        self.flush()  # the events before it in the log are what it covers
        kept = heads_holding(checkpoint.heads, self.store.chain_heads()) if not self.seen else ()
        if not kept:
            self.left_out += 1
            return
        self.trimmed += len(kept) < len(checkpoint.heads)
        self.batch.append(msgspec.structs.replace(checkpoint, heads=kept))
        self.flush()

    def checkpoints_said(self) -> str:
        said = []
        if self.trimmed:
            said.append(f"{counted(self.trimmed, 'checkpoint')} kept for the chains that hold here only")
        if self.left_out:
            said.append(f"{counted(self.left_out, 'checkpoint')} left out")
        return (f"; of the checkpoints of the store the lines came from, {' and '.join(said)}: they vouch for that "
                "store's chains (its audit trail, its rooms' versions), not this one's") if said else ""


def heads_holding(named: tuple[ChainHead, ...], here: list[ChainHead]) -> tuple[ChainHead, ...]:
    """The heads a checkpoint of another store names that this store's chains have as they are now: the same stream
    at the same version with the same link. An audit trail's never (a log holds none of its records)."""
    current = set(here)
    return tuple(head for head in named if not is_audit_trail(head.stream) and head in current)


def _as_archived(event: Event, names: RoomNames) -> Event:
    """``event`` in its room as archived: a JID is not case-sensitive, and a room beside the archived one, named in
    another case, would split its history (and merge their counts where rooms are folded, as in search)."""
    room = names.named(event.room)
    if room is None:
        names.add(event.room)
        return event
    return event if room == event.room else msgspec.structs.replace(event, room=room)


def _expected_heads(survey: _Survey, trailer_heads: list[ChainHead]) -> dict[str, ChainHead]:
    """The heads the restored store must have, from the trailer checked against the lines: a stream whose last
    events were purged goes on at its head, which only the trailer gives (without it, its next event would take
    a purged version). `export-log` reads the heads after the lines, so a stream written meanwhile has its head
    beyond them: its purged tail's head is then the last span's, else it is left to its lines."""
    heads = {head.stream: head for head in trailer_heads}
    purged = purged_spans(survey.purges)
    expected = {}
    for stream in survey.versions.keys() | purged.keys():
        written = survey.versions.get(stream, 0)
        tail = max(purged.get(stream, []), key=lambda span: span.last, default=None)
        last = max(written, tail.last if tail else 0)
        head = heads.get(stream)
        if (head is None and last > written) or (head is not None and head.version < last):
            raise EventDecodeError(f"{survey.source}: its trailer gives {stream} the head version "
                                   f"{head.version if head else 'none'}, its lines and purge records {last}")
        if head is not None and head.version == last:
            expected[stream] = head
        elif head is not None and last > written:
            expected[stream] = ChainHead(stream, tail.last, tail.link, head.genesis_version)
    return expected


def _expected_trails(survey: _Survey, log: LogFile) -> dict[str, ChainHead]:
    """The heads of the audit trails the restore copies, from the trailer, which must name every trail the lines
    hold at its last record and link (a backup written before it held audit trails names none); the trailer's marks
    of copied checkpoints must name copied trails."""
    heads = {head.stream: head for head in log.heads if is_audit_trail(head.stream)}
    if {stream: (head.version, head.link) for stream, head in heads.items()} != {
            trail: (last, survey.links[trail].hex()) for trail, last in survey.trails.items()}:
        raise EventDecodeError(f"{survey.source}: its trailer's audit trail heads are not its audit records' last "
                               "ones: the file was altered")
    if not all(is_audit_trail(trail) and trail.endswith(COPIED) for trail in log.copied_checkpoints):
        raise EventDecodeError(f"{survey.source}: its trailer marks checkpoints of trails it cannot have copied")
    return heads


def _held_trails(store: EventStore, opener, survey: _Survey) -> dict[str, tuple[int, bytes]]:
    """Each of the backup's audit trails is the one its copy in the store was copied from, if the store holds one (a
    restore repeated or resumed): the copy's last record's link is the file's at that record. Checked before
    anything is written; trail -> the number and the link of the copy's last record."""
    held = {trail: store.copied_head(copied_trail(trail))[0] for trail in survey.trails}
    links = {trail: chain.genesis(trail) for trail, seq in held.items() if not seq}
    if len(links) < len(held):  # the file read once more for the links at those records
        again = _Survey(survey.source, wanted=held)
        with opener() as raw:
            for entry in LogFile(raw, survey.source).entries():
                again.read(entry)
        links |= again.found
    for trail, seq in held.items():
        store.check_copy(copied_trail(trail), links.get(trail), f"the backup's {trail}")
    return {trail: (seq, links[trail]) for trail, seq in held.items()}


def _restore(store: EventStore, opener, survey: _Survey, log: LogFile) -> int:
    heads = _expected_heads(survey, log.heads)
    trails = _expected_trails(survey, log)
    copies_held = _held_trails(store, opener, survey)
    purged = purged_spans(survey.purges)
    with opener() as raw:
        entries = LogFile(raw, survey.source).entries()
        held = _skip_held(store, entries)
        records: list[Entry] = []  # the first audit record, which ends the events (``_Survey``)
        events = itertools.takewhile(lambda e: e.trail is None or records.append(e), entries)
        copies = ((e.version, Recorded(e.position, e.event)) for e in events)
        read, new, _ = copy_records(copies, store, copied_chains(purged, log.heads), log.copied_checkpoints)
        carry_purged_heads(heads.values(), store, purged)
        # Each trail beside the store's own, as `migrate` keeps the source's (``archive.copied_trails``).
        copied = sum(store.copy_audit(copied_trail(trail), (Recorded(e.position, e.event) for e in lines
                                                            if e.position > copies_held[trail][0]),
                                      link=copies_held[trail][1])
                     for trail, lines in itertools.groupby(itertools.chain(records, entries), lambda e: e.trail))
    restored = {head.stream: head for head in store.chain_heads()}
    expected = [*heads.values(), *(msgspec.structs.replace(head, stream=copied_trail(head.stream))
                                   for head in trails.values())]
    differ = [head.stream for head in expected if restored.get(head.stream) != head]
    if differ:
        raise StoreError(f"the restored chain heads differ from the backup's trailer in {', '.join(differ)}: the "
                         "file's events or its trailer were altered")
    print(f"restored {counted(new, 'new event')} from {survey.source} at their positions and versions ({held + read - new} "
          f"already archived) and {counted(copied, 'new audit record')} beside the store's own trail")
    return 0


def _skip_held(store: EventStore, entries: Iterator[Entry]) -> int:
    """Take from ``entries`` the start of the backup the store holds, checked (a restore stopped part way); how
    many. A backup goes into an empty store or one holding its start."""
    held = 0
    for version, record in store.read_log_versions(page_size=MAX_BATCH):
        entry = next(entries, None)
        if entry is None or (entry.position, entry.version, entry.event) != (record.position, version, record.event):
            raise StoreError(f"the store holds events the backup does not begin with (position {record.position}): "
                             "restore it into an empty store")
        held += 1
    return held


def _file_opener(path: str) -> Callable[[], AbstractContextManager[BinaryIO]]:
    return lambda: _open(path)


def _spooled_opener(path: str) -> Callable[[], AbstractContextManager[BinaryIO]]:
    """Standard input or a pipe, read once, into a temporary file (the file is read twice: first checked whole):
    on disk, not in memory, so a backup piped in needs no memory of its size. Gone when the process ends."""
    spool = tempfile.TemporaryFile()
    try:
        if path == "-":
            shutil.copyfileobj(sys.stdin.buffer, spool)
        else:
            with _open(path) as f:
                shutil.copyfileobj(f, spool)
        spool.flush()
    except OSError as e:  # the temporary directory full, say
        given = "standard input" if path == "-" else path
        raise ChatArchiveError(f"cannot keep {given} in a temporary file in {tempfile.gettempdir()}: {e.strerror}") from e

    def reopened() -> AbstractContextManager[BinaryIO]:
        spool.seek(0)
        return open(os.dup(spool.fileno()), "rb")  # the same file and offset; closing it leaves the spool open

    return reopened


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as e:
        raise ChatArchiveError(f"cannot read {path}: {e.strerror}") from e
