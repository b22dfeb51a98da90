"""What an export of a time range holds of a transcript line: the one rule every export format follows.

A line is made by events of its own: the one that created it (a post, a join, a gap's record, ...) and, for a
message, the corrections applied to it and its removal (``line_events``). An export of ``[start, end)`` holds the
events that occurred in the range: JSON lines and CSV the archived events themselves, the line-based formats
(RSMF, EML) every line one of them made or changed (``held``), so that a message posted before the range and
removed in it is there, and one posted in it and removed after it is too. A line is shown as it read at the
range's end (``as_at``): what changed it after the end is not applied but listed with it (``Held.later``), so
that the export says the message was removed or edited later, when and how, without showing it removed on a day
it was not. What changed it before the start is shown as its history (its earlier texts, by their times).

A gap line is held wherever its span ``[gap start, gap end]`` meets the range (its record is made at its end, and
the archive may be missing events anywhere in it): an export of a day inside a long gap says so, and so does every
ranged transcript read (``gap_meets``; ``transcripts.queries``: first in the range, as if it began at its start).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgspec

from .lines import Line, as_at, text_capture


class LineEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event a line is made of: ``what`` it did (created, edited, removed), when, its log position, how it
    was captured (None: live)."""

    what: str
    at: datetime
    position: int
    capture: str | None = None


class Held(NamedTuple):
    """A line as an export of a range holds it: as it read at the range's end, and its changes after the end."""

    line: Line
    later: tuple[LineEvent, ...] = ()


def line_events(line: Line) -> list[LineEvent]:
    """The events ``line`` is made of, in the order of their times: created, each correction, the removal. (A
    retraction line, of a message the archive does not hold, is its retraction alone: created.)"""
    events = [LineEvent(what="created", at=line.at, position=line.id, capture=line.capture)]
    if line.kind == "message":
        if line.versions and line.edit_position is not None and line.edited_at is not None:
            # versions[0] is the text the line was created with; each later version, and the current text, was set
            # by a correction.
            events += [LineEvent(what="edited", at=v.at, position=v.position, capture=v.capture)
                       for v in line.versions[1:]]
            events.append(LineEvent(what="edited", at=line.edited_at, position=line.edit_position,
                                    capture=text_capture(line)))
        if line.removed is not None:
            removed = line.removed
            events.append(LineEvent(what="removed", at=removed.at, position=removed.position, capture=removed.capture))
    return sorted(events, key=lambda e: (e.at, e.position))


def in_range(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


def held(line: Line, start: datetime | None, end: datetime | None) -> Held | None:
    """``line`` as an export of ``[start, end)`` (either bound None: open) holds it; None if it holds nothing of
    it. A line created at or after the end is not held (it did not exist by then)."""
    if line.kind == "gap":
        return Held(line) if gap_meets(line, start, end) else None
    if end is not None and line.at >= end:
        return None
    events = line_events(line)
    if not any(in_range(e.at, start, end) for e in events):
        return None
    if end is None:
        return Held(line)
    return Held(as_at(line, end), tuple(e for e in events if e.at >= end))


def gap_meets(line: Line, start: datetime | None, end: datetime | None) -> bool:
    """Whether the span ``[gap start, gap end]`` of the gap line ``line`` meets ``[start, end)``: where every
    ranged read shows it (an export, a transcript page, /state), however long before ``start`` it began."""
    return (end is None or line.at < end) and (start is None or (line.gap_end or line.at) >= start)


def positions_in(line: Line, start: datetime | None, end: datetime | None) -> list[int]:
    """The log positions of ``line``'s events in ``[start, end)``: what the event formats hold of it."""
    return sorted(e.position for e in line_events(line) if in_range(e.at, start, end))


def may_hold(created: datetime, changed: bool, start: datetime | None, end: datetime | None) -> bool:
    """Whether a message line created at ``created``, ``changed`` since (edited or removed), may have events in
    ``[start, end)`` (``held`` of the line then decides): where a search's hits are narrowed to a range before
    their lines are read."""
    return (end is None or created < end) and (start is None or created >= start or changed)
