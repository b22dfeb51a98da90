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
from .lines import Line, shown as shown_lines
from .messages import MemoryBook
from .transcripts import logic as transcript_logic

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
    transcript = MemoryBook()
    open_spans: dict[str, Span] = {}
    stay_starts: dict[int, datetime] = {}
    gap: Gap | None = None
    for record in store.read_room(room, end=at):
        event = record.event
        transcript.apply(transcript_logic.step(record.position, event, transcript))
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
    shown = shown_lines([line for line in ordered if since is None or line.at >= since], include_originals)
    shown = shown[len(shown) - limit :] if limit else []
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
