"""Build an export bundle: a ZIP of RSMF, EML, JSON-lines or CSV files and its manifest.

What is exported: the rooms asked for (default every room), optionally only what
occurred in [start, end), optionally only the messages a search finds (each with
its edits and its removal). Every format holds a range by one rule
(``projections.ranges``): JSON lines and CSV the archived events that occurred in it
(edits and retractions are events of their own there), RSMF and EML, made per
room-day from the transcript lines (the one message model: text, edits and removals
as it folds them), every line one of those events made or changed, as it read at the
range's end, its changes after the end listed with it. Members are streamed into the
ZIP and hashed as they are written, so an export of any size takes little memory.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import IO

from archive.errors import InvalidQueryError, NotFoundError
from archive.events import Recorded
from archive.room_names import RoomNames
from archive.store import EventStore
from archive.times import format_time, utcnow
from projections.ranges import Held, held, may_hold
from projections.search import Scope, SearchIndex
from projections.tables import order_micros
from projections.views import Views

from ..export import csv_lines, jsonl_lines, message_records
from .eml import eml_file
from .manifest import MANIFEST_NAME, FileEntry, Manifest, manifest_bytes
from .rsmf import rsmf_file

FORMATS = ("rsmf", "eml", "jsonl", "csv")
PAGE = 1000
Progress = Callable[[int, int, int], None]
"""(rooms done, rooms in all, events written so far)"""


@dataclass(frozen=True)
class ExportRequest:
    format: str
    rooms: tuple[str, ...] = ()  # empty: every room
    start: datetime | None = None
    end: datetime | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidQueryError(f"export format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.start and self.end and self.end <= self.start:
            raise InvalidQueryError("the end of an export's range must be later than its start")


@dataclass
class _Tally:
    files: list[FileEntry] = field(default_factory=list)
    events: int = 0
    messages: int = 0


def write_bundle(
    out: IO[bytes], request: ExportRequest, store: EventStore, views: Views, search: SearchIndex,
    progress: Progress = lambda done, total, events: None,
) -> tuple[Manifest, str]:
    """Write the bundle to ``out``; its manifest and the manifest's SHA-256."""
    names = RoomNames(store.rooms())
    named = [names.named(room) for room in request.rooms]
    if None in named:
        raise NotFoundError(f"no events for room {request.rooms[named.index(None)]!r}")
    rooms = list(dict.fromkeys(named)) or names.rooms  # a room named twice (in any case) is exported once
    hits = _hits(search, request, rooms) if request.query is not None else None
    tally = _Tally()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        if request.format in ("jsonl", "csv"):
            records = _all_records(store, views, request, rooms, hits, tally, progress)
            lines = jsonl_lines(records) if request.format == "jsonl" else csv_lines(records)
            _member(zf, f"events.{request.format}", lines, tally, lambda: tally.events)
        else:
            for done, room in enumerate(rooms, 1):
                for day, lines in _room_days(views, request, room, hits):
                    tally.events += len(lines)
                    tally.messages += sum(1 for line, _ in lines if line.kind == "message")
                    name = f"{request.format}/{_safe(room)}/{day.isoformat()}.{request.format}"
                    data = rsmf_file(room, lines, room) if request.format == "rsmf" else eml_file(room, day, lines)
                    _member(zf, name, [data], tally, lambda n=len(lines): n)
                progress(done, len(rooms), tally.events)
        heads = {h.stream: h for h in store.chain_heads()}
        manifest = Manifest(
            created_at=format_time(utcnow()),
            format=request.format,
            rooms=rooms,
            range_from=format_time(request.start) if request.start else None,
            range_to=format_time(request.end) if request.end else None,
            query=request.query,
            counts={"events": tally.events, "messages": tally.messages, "rooms": len(rooms), "files": len(tally.files)},
            chain_heads=[heads[room] for room in rooms if room in heads],
            files=tally.files,
        )
        raw = manifest_bytes(manifest)
        zf.writestr(MANIFEST_NAME, raw)
    return manifest, hashlib.sha256(raw).hexdigest()


def _member(zf: zipfile.ZipFile, name: str, chunks: Iterable[bytes], tally: _Tally, events: Callable[[], int]) -> None:
    """Stream ``chunks`` into member ``name``; ``events()``, asked once they are written, counts its events."""
    digest, size = hashlib.sha256(), 0
    with zf.open(name, "w", force_zip64=True) as member:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            member.write(chunk)
    tally.files.append(FileEntry(name, digest.hexdigest(), size, events()))


def _hits(search: SearchIndex, request: ExportRequest, rooms: list[str]) -> dict[str, list]:
    """The search's hits that may have events in the range (``ranges.may_hold``), by room, oldest first."""
    scope = Scope(rooms=frozenset(rooms), compliance=True, jids=True)
    found: dict[str, list] = {}
    cursor = None
    while True:
        results = search.search(request.query, scope, sort="oldest", limit=500, cursor=cursor, facets=False)
        for hit in results.hits:
            if may_hold(hit.time, hit.edited or hit.retracted, request.start, request.end):
                found.setdefault(hit.room, []).append(hit)
        cursor = results.next_cursor
        if cursor is None:
            return found


def _all_records(store, views, request, rooms, hits, tally, progress) -> Iterator[Recorded]:
    context = SimpleNamespace(store=store, views=views)
    for done, room in enumerate(rooms, 1):
        if hits is None:
            records = store.read_room(room, start=request.start, end=request.end)
        else:
            records = (record for hit in hits.get(room, [])
                       for record in message_records(context, hit, request.start, request.end))
        for record in records:
            tally.events += 1
            tally.messages += type(record.event).__name__ == "MessagePosted"
            yield record
        progress(done, len(rooms), tally.events)


def _room_days(views: Views, request: ExportRequest, room: str, hits) -> Iterator[tuple[date, list[Held]]]:
    """A room's transcript lines (originals included) as the range holds them (``ranges.held``), grouped by the
    UTC day of each line. With a search, its messages and every gap line the range holds: what it found, and
    where the archive may be missing what it would have found."""
    wanted = None if hits is None else {hit.position for hit in hits.get(room, [])}
    if wanted is not None and not wanted:  # nothing found here: read the gaps alone, not the room's whole range
        held_lines = (Held(line) for line in views.transcripts.gaps_meeting(
            room, request.start, request.end, include_originals=True))
    else:
        held_lines = _held_lines(views, request, room)
    day, lines = None, []
    for line, later in held_lines:
        if wanted is not None and line.id not in wanted and line.kind != "gap":
            continue
        if day is not None and line.at.date() != day:
            yield day, lines
            lines = []
        day = line.at.date()
        lines.append(Held(line, later))
    if lines:
        yield day, lines


def _held_lines(views: Views, request: ExportRequest, room: str) -> Iterator[Held]:
    """Every line of ``room`` the range holds, in transcript order: those before its start that an event in it
    changed (``changed_before``) or whose gap reaches into it, then the range's own, read by whole seconds to the
    second after its end (the view's ``ts``) and each kept by the rule."""
    start, end = request.start, request.end
    if start is not None:
        earlier = {line.id: line for line in views.transcripts.changed_before(room, start, include_originals=True)}
        earlier.update((line.id, line) for line in views.transcripts.gaps_into(room, start, include_originals=True))
        for line in sorted(earlier.values(), key=lambda line: (order_micros(line.at), line.id)):
            if (kept := held(line, start, end)) is not None:
                yield kept
    read_to = end + timedelta(seconds=1) if end is not None else None
    cursor = None
    while True:
        page = views.transcripts.page(room, start=start, end=read_to, cursor=cursor, limit=PAGE, include_originals=True,
                                      reaching=False)  # those gaps are among ``earlier``, in order
        for line in page.lines:
            if (kept := held(line, start, end)) is not None:
                yield kept
        cursor = page.next_cursor
        if cursor is None:
            return


def _safe(room: str) -> str:
    """The room as a folder name in the ZIP: unchanged where it holds only letters, digits and ``-_.@``;
    otherwise those characters with ``_`` for the others, and ``~`` and a digest of the room, so that rooms
    differing only there (``team+1`` and ``team#1``, both ``team_1``; long names cut at 200 characters) get
    folders of their own rather than members of the same name."""
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in room)[:200]
    return safe if safe == room else f"{safe}~{hashlib.sha256(room.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"
