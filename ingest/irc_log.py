"""Import of plain IRC-style logs as archive events (capture = IMPORT).

Understood lines (anything else is skipped)::

    [14:02] <alice> hello there          a message ([HH:MM] or [HH:MM:SS])
    [14:02] * alice waves                an action, stored as "/me waves"
    === alice joined                     (optionally after a [HH:MM] stamp; "joined #chan" etc. allowed)
    === alice left                       ("left", "quit" and "parted", with any trailing text)
    === alice is now known as alicia
    --- Day changed Thu May 02 2024      (irssi) sets the date
    --- Log opened Thu May 02 14:00:00 2024

Logs carry times of day only: the date starts at ``start`` and moves to the next
day whenever the clock goes backwards (or a "Day changed" line says so). Lines
without a stamp take the last stamp seen.

Idempotency: re-importing the same log must add nothing. IRC lines have no
ids, so the store's fallback key (a hash of the event) applies; to keep two
identical lines in the same minute apart, the n-th line under one stamp
occurs n microseconds after it. Times are read in ``tz`` (UTC by default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from archive.events import Capture, Event, MessagePosted, NickChanged, OccupantJoined, OccupantLeft

_STAMP = re.compile(r"^\[(\d{1,2}):(\d{2})(?::(\d{2}))?\]\s?")
_MESSAGE = re.compile(r"^<[@+%~&]?([^>\s]+)>\s?(.*)$")
_ACTION = re.compile(r"^\*\s+(\S+)\s+(.*)$")
_JOINED = re.compile(r"^===\s+(\S+)\s+(?:has\s+)?joined\b")
_LEFT = re.compile(r"^===\s+(\S+)\s+(?:has\s+)?(?:left|quit|parted)\b(.*)$")
_NICK = re.compile(r"^===\s+(\S+)\s+is now known as\s+(\S+)")
_DAY_CHANGED = re.compile(r"^---\s+Day changed\s+\w{3}\s+(\w{3}\s+\d{1,2}\s+\d{4})")
_LOG_OPENED = re.compile(r"^---\s+Log opened\s+\w{3}\s+(\w{3})\s+(\d{1,2})\s+[\d:]+\s+(\d{4})")


def parse_irc_log(
    lines: Iterable[str],
    room: str,
    start: date,
    *,
    recorded_at: datetime,
    tz: tzinfo = timezone.utc,
) -> Iterator[Event]:
    """The archive events of an IRC-style log of ``room`` that begins on ``start``."""
    day = start
    clock: time | None = None
    stamp: datetime | None = None
    same_stamp = 0
    common = {"room": room, "recorded_at": recorded_at, "capture": Capture.IMPORT}
    for raw in lines:
        line = raw.rstrip("\r\n")
        new_day = _day_line(line)
        if new_day is not None:
            day, clock = new_day, None
            continue
        match = _STAMP.match(line)
        if match:
            hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
            if not (hour < 24 and minute < 60 and second < 60):
                continue
            now = time(hour, minute, second)
            if clock is not None and now < clock:
                day += timedelta(days=1)
            clock = now
            line = line[match.end():]
            at = datetime.combine(day, now, tzinfo=tz).astimezone(timezone.utc)
            if at != stamp:
                stamp, same_stamp = at, 0
        if stamp is None:
            continue  # nothing before the first stamp can be placed in time
        event = _event(line, {**common, "occurred_at": stamp + timedelta(microseconds=same_stamp)})
        if event is not None:
            same_stamp += 1
            yield event


def _day_line(line: str) -> date | None:
    match = _DAY_CHANGED.match(line)
    if match:
        return datetime.strptime(match[1], "%b %d %Y").date()
    match = _LOG_OPENED.match(line)
    if match:
        return datetime.strptime(f"{match[1]} {match[2]} {match[3]}", "%b %d %Y").date()
    return None


def _event(line: str, common: dict) -> Event | None:
    if match := _MESSAGE.match(line):
        return MessagePosted(**common, nick=match[1], body=match[2]) if match[2] else None
    if match := _ACTION.match(line):
        return MessagePosted(**common, nick=match[1], body=f"/me {match[2]}")
    if match := _NICK.match(line):
        return NickChanged(**common, old_nick=match[1], new_nick=match[2])
    if match := _JOINED.match(line):
        return OccupantJoined(**common, nick=match[1])
    if match := _LEFT.match(line):
        status = match[2].strip(" :()") or None
        return OccupantLeft(**common, nick=match[1], status=status)
    return None
