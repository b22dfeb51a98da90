"""A room as it was at a moment T, reconstructed from its events (for analysts).

``room_state_at(store, room, at, *, limit=200, since=None, include_originals=False,
gaps=()) -> RoomState`` replays the room's events that occurred before ``at``
through the same pure logic as the views: the occupants then (with role,
affiliation, show, status), the subject then, and the transcript as it read
then (corrections and removals made after ``at`` are not applied). ``lines``
are the last ``limit`` lines before ``at`` (those from ``since`` on, if given),
oldest first. ``gaps`` (from the presence view) lets an archive gap recorded
after ``at`` still mark presence at ``at`` as unknown.
Cost: one read of the room's events up to ``at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from archive import events as ev
from archive.errors import InvalidQueryError
from archive.store import EventStore

from .presence import logic as presence_logic
from .presence.logic import Gap, Span
from .presence.queries import Occupant, occupant
from .transcripts import logic as transcript_logic
from .transcripts.logic import Line

MAX_LINES = 5000


class RoomState(msgspec.Struct, kw_only=True):
    room: str
    at: ev.UtcTime
    subject: str | None
    subject_by: str | None
    occupants: list[Occupant]
    presence_known: bool
    gap: Gap | None
    lines: list[Line]


class _Transcript:
    """An in-memory transcript driven by ``transcripts.logic``."""

    def __init__(self) -> None:
        self.lines: dict[int, Line] = {}
        self.refs: dict[tuple[str, str, str], int] = {}
        self.waiting: dict[tuple[str, str], list[tuple[int, ev.MessageRetracted]]] = {}

    def find(self, room: str, kind: str, ref: str) -> Line | None:
        line_id = self.refs.get((room, kind, ref))
        return None if line_id is None else self.lines[line_id]

    def step(self, position: int, event: ev.Event) -> None:
        outcome = transcript_logic.step(position, event, self.find)
        for line in outcome.lines:
            if line.id not in self.lines:
                if self.waiting and line.kind == "message":
                    line = transcript_logic.apply_pending(line, self.waiting)
                for kind, ref in transcript_logic.refs(line):
                    self.refs[(line.room, kind, ref)] = line.id
            self.lines[line.id] = line
        if outcome.pending is not None:
            key = (outcome.pending.room, outcome.pending.target_id)
            self.waiting.setdefault(key, []).append((position, outcome.pending))


def room_state_at(
    store: EventStore,
    room: str,
    at: datetime,
    *,
    limit: int = 200,
    since: datetime | None = None,
    include_originals: bool = False,
    gaps: Iterable[Gap] = (),
) -> RoomState:
    if not 0 <= limit <= MAX_LINES:
        raise InvalidQueryError(f"limit must be 0..{MAX_LINES}")
    transcript = _Transcript()
    open_spans: dict[str, Span] = {}
    stay_starts: dict[int, datetime] = {}
    gap: Gap | None = None
    for record in store.read_room(room, end=at):
        event = record.event
        transcript.step(record.position, event)
        for span in presence_logic.step(open_spans, record.position, event):
            if span.end is None:
                open_spans[span.nick] = span
                stay_starts.setdefault(span.stay, span.start)
            elif span.nick in open_spans and open_spans[span.nick].id == span.id:
                del open_spans[span.nick]
        if isinstance(event, ev.ArchiveGap) and event.gap_start <= at < event.gap_end:
            gap = presence_logic.gap_of(record.position, event)
    gap = gap or next((g for g in gaps if g.start <= at < g.end), None)
    ordered = sorted(transcript.lines.values(), key=lambda line: (line.at, line.id))
    subject = next((line for line in reversed(ordered) if line.kind == "subject_changed"), None)
    shown = [line for line in ordered if since is None or line.at >= since]
    shown = shown[len(shown) - limit :] if limit else []
    if not include_originals:
        shown = [transcript_logic.ordinary(line) for line in shown]
    return RoomState(
        room=room,
        at=at,
        subject=subject.body if subject else None,
        subject_by=subject.nick if subject else None,
        occupants=[occupant(s, stay_starts) for s in sorted(open_spans.values(), key=lambda s: s.nick)],
        presence_known=gap is None,
        gap=gap,
        lines=shown,
    )
