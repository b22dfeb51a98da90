"""`import FILE`: events from JSON lines into the store; a backup from `export-log` is restored as it was."""

from __future__ import annotations

import argparse
import io
import itertools
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO

from archive.errors import ChatArchiveError, EventDecodeError
from archive.events import EventsPurged, Recorded
from archive.store import MAX_BATCH

from ..bootstrap import open_store
from ..log_file import NUMBERED_KINDS, LogFile
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
    """What a first reading of the whole file found (a bad file imports nothing)."""

    numbered: bool = True  # every line holds its event's position and version: a backup
    purges: list[EventsPurged] = field(default_factory=list)
    first_numbered_kind: int | None = None  # the line number of a record that names events by number


def import_events(args: argparse.Namespace, config) -> int:
    source = "standard input" if args.file == "-" else args.file
    opener = _stdin_opener() if args.file == "-" else _file_opener(args.file)
    with opener() as raw:
        survey = _survey(LogFile(raw, source))
    if not survey.numbered and survey.first_numbered_kind is not None:
        raise EventDecodeError(
            f"{source}, event {survey.first_numbered_kind}: a purge record or checkpoint names events by the positions "
            "and versions of the store it came from, which this file's lines do not hold: import a backup written "
            "by `chat-archive export-log` (it restores them), or leave these records out"
        )
    with open_store(config) as store, opener() as raw:
        log = LogFile(raw, source)
        if survey.numbered:
            purged = purged_spans(survey.purges)
            read, new, _ = copy_records(((e.version, Recorded(e.position, e.event)) for e in log.entries()), store, purged)
            carry_purged_heads(log.heads, store, purged)
            print(f"restored {new} new events from {source} at their positions and versions ({read - new} already archived)")
            return 0
        new = seen = 0
        entries = log.entries()
        while batch := [e.event for e in itertools.islice(entries, MAX_BATCH)]:
            stored = len(store.append(batch))
            new, seen = new + stored, seen + len(batch) - stored
    print(f"imported {new} new events from {source} ({seen} already archived)")
    return 0


def _survey(log: LogFile) -> _Survey:
    survey = _Survey()
    for number, entry in enumerate(log.entries(), 1):
        survey.numbered = survey.numbered and entry.position is not None and entry.version is not None
        if isinstance(entry.event, NUMBERED_KINDS) and survey.first_numbered_kind is None:
            survey.first_numbered_kind = number
        if type(entry.event) is EventsPurged:
            survey.purges.append(entry.event)
    return survey


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
