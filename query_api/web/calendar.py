"""A room's active days: the month calendar on its page and the previous/next day links.

Days are UTC days, as everywhere in the archive. Both read the transcript view
by probing it (the first line at or after a moment, the last line before one),
one indexed lookup per active day at most, so a room with years of history
costs no more than one with a week. ``month_grid`` is the pure part.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

# (start, end) -> the time of the room's first line in [start, end), or None
FirstLine = Callable[[datetime, datetime | None], datetime | None]
# end -> the time of the room's last line before end, or None
LastLine = Callable[[datetime], datetime | None]


@dataclass(frozen=True)
class Cell:
    day: date | None  # None: a padding cell before the 1st or after the month's last day
    active: bool = False
    current: bool = False


def month_grid(year: int, month: int, active: set[date], current: date | None) -> list[list[Cell]]:
    """The month as weeks of seven cells, Monday first."""
    weeks = []
    for week in _calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        weeks.append([
            Cell(day, day in active, day == current) if day.month == month else Cell(None) for day in week
        ])  # fmt: skip
    return weeks


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def active_days(first_line: FirstLine, first: date, last: date) -> set[date]:
    """The days in [first, last] with at least one line: a probe per active day, skipping empty runs."""
    days = set()
    cursor, end = midnight(first), midnight(last) + timedelta(days=1)
    while cursor < end:
        found = first_line(cursor, end)
        if found is None:
            break
        day = found.astimezone(timezone.utc).date()
        days.add(day)
        cursor = midnight(day) + timedelta(days=1)
    return days


def neighbour_days(first_line: FirstLine, last_line: LastLine, day: date) -> tuple[date | None, date | None]:
    """The nearest earlier and later days with lines (None at either end of the room's history)."""
    before = last_line(midnight(day))
    after = first_line(midnight(day) + timedelta(days=1), None)
    return (
        before.astimezone(timezone.utc).date() if before else None,
        after.astimezone(timezone.utc).date() if after else None,
    )


def month_of(text: str | None, day: date) -> tuple[int, int] | None:
    """(year, month) of the page's ``month`` parameter (``YYYY-MM``), the day's month if none is given; None if
    it is no month (the page's 400, as for a day that is no day: showing another month hid the mistake)."""
    if not text:
        return day.year, day.month
    parts = text.split("-")
    if len(parts) != 2 or not all(part.isascii() and part.isdecimal() for part in parts):
        return None
    year, month = int(parts[0]), int(parts[1])
    return (year, month) if 1 <= month <= 12 and 1 <= year <= 9999 else None


def shift_month(year: int, month: int, by: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + by
    return index // 12, index % 12 + 1
