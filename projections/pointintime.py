"""A room as it was at a moment T (for analysts), read from the stored views.

``room_state_at(transcripts, presence, room, at, *, known_until, away_since=None, limit=200,
since=None, include_originals=False) -> RoomState``: the occupants then (with role,
affiliation, show, status: the presence view's spans that cover T), the subject
then, and the last ``limit`` transcript lines before T (those from ``since`` on,
if given, led by the gaps that reach into it from before: ``Transcripts.page``), oldest first, each as it read then (``as_at``: corrections and
removals made after T are not applied).

No replay: the views are the room's state kept at every event (spans, lines with
their versions), so a page of /state costs a few index reads however long the
room's history. ``known_until`` is the archive's last known moment: presence at a
later T is not known yet (``presence_known`` False, no occupants).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from archive import events as ev
from archive.errors import InvalidQueryError

from .lines import Line, as_at, shown
from .presence.logic import Gap, room_known_until
from .presence.queries import Presence
from .presence.results import Occupant
from .transcripts.queries import MAX_LIMIT, Transcripts

MAX_LINES = 5000
SECOND = timedelta(seconds=1)


class RoomState(msgspec.Struct, kw_only=True):
    room: str
    at: ev.UtcTime
    subject: str | None
    subject_by: str | None
    occupants: list[Occupant]
    presence_known: bool
    gap: Gap | None
    lines: list[Line]
    known_until: ev.UtcTime | None = None  # the archive's last known moment
    unknown_why: str | None = None  # why presence at ``at`` is not known (``presence.logic.unknown_why``)


def room_state_at(
    transcripts: Transcripts,
    presence: Presence,
    room: str,
    at: datetime,
    *,
    known_until: datetime | None,
    away_since: datetime | None = None,
    limit: int = 200,
    since: datetime | None = None,
    include_originals: bool = False,
) -> RoomState:
    if not 0 <= limit <= MAX_LINES:
        raise InvalidQueryError(f"limit must be 0..{MAX_LINES}")
    lines: list[Line] = []
    if limit and (since is None or since < at):
        # The page ends after T's whole second (the view's order), and lines are read with
        # their versions, so that what changed after T can be undone.
        cursor = None
        while len(lines) < limit:  # backwards, a page of at most the view's limit at a time
            page = transcripts.page(room, start=since, end=at + SECOND, cursor=cursor, direction="backward",
                                    limit=min(limit - len(lines), MAX_LIMIT), include_originals=True)
            lines[:0] = shown([as_at(line, at) for line in page.lines if line.at < at], include_originals)
            if page.prev_cursor is None:
                break
            cursor = page.prev_cursor
    subject = transcripts.subject_at(room, at)
    occupants = presence.occupants_at(room, at, known_until=known_until, away_since=away_since)
    return RoomState(
        room=room,
        at=at,
        subject=subject.body if subject else None,
        subject_by=subject.nick if subject else None,
        occupants=occupants.occupants,
        presence_known=occupants.known,
        gap=occupants.gap,
        lines=lines,
        known_until=room_known_until(known_until, away_since),
        unknown_why=occupants.unknown_why,
    )
