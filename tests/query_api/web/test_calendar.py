"""Active days: the month grid and the probes that find days with lines, skipping empty ones."""

from __future__ import annotations

import bisect
from datetime import date, datetime, timezone

from query_api.web.calendar import active_days, month_grid, month_of, neighbour_days, shift_month

LINES = sorted(
    datetime(2024, 5, d, h, tzinfo=timezone.utc) for d, h in ((1, 9), (1, 23), (2, 0), (9, 12), (30, 1), (31, 23))
) + [datetime(2024, 7, 4, 8, tzinfo=timezone.utc)]


class Probe:
    """The transcript view's two lookups over LINES, counting how often they are asked."""

    def __init__(self):
        self.calls = 0

    def first(self, start, end):
        self.calls += 1
        i = bisect.bisect_left(LINES, start)
        return LINES[i] if i < len(LINES) and (end is None or LINES[i] < end) else None

    def last(self, end):
        self.calls += 1
        i = bisect.bisect_left(LINES, end)
        return LINES[i - 1] if i else None


def test_active_days_take_one_probe_per_active_day():
    probe = Probe()
    days = active_days(probe.first, date(2024, 5, 1), date(2024, 5, 31))
    assert days == {date(2024, 5, d) for d in (1, 2, 9, 30, 31)}
    assert probe.calls == 5  # the last probe from June 1st on is bounded by the month: none more
    assert active_days(Probe().first, date(2024, 6, 1), date(2024, 6, 30)) == set()


def test_day_navigation_skips_empty_days_and_stops_at_both_ends():
    probe = Probe()
    assert neighbour_days(probe.first, probe.last, date(2024, 5, 9)) == (date(2024, 5, 2), date(2024, 5, 30))
    assert neighbour_days(probe.first, probe.last, date(2024, 5, 31)) == (date(2024, 5, 30), date(2024, 7, 4))
    assert neighbour_days(probe.first, probe.last, date(2024, 5, 1)) == (None, date(2024, 5, 2))
    assert neighbour_days(probe.first, probe.last, date(2024, 7, 4)) == (date(2024, 5, 31), None)
    assert neighbour_days(probe.first, probe.last, date(2024, 6, 15)) == (date(2024, 5, 31), date(2024, 7, 4))


def test_month_grid_weeks_start_on_monday_and_mark_active_and_current_days():
    weeks = month_grid(2024, 5, {date(2024, 5, 1), date(2024, 5, 9)}, date(2024, 5, 9))
    assert all(len(week) == 7 for week in weeks) and len(weeks) == 5
    assert [c.day for c in weeks[0][:3]] == [None, None, date(2024, 5, 1)]  # May 1st 2024 was a Wednesday
    cells = [c for week in weeks for c in week if c.day]
    assert len(cells) == 31
    assert [c.day.day for c in cells if c.active] == [1, 9] and [c.day.day for c in cells if c.current] == [9]


def test_month_parameter_and_shifting():
    assert month_of("2023-12", date(2024, 5, 1)) == (2023, 12)
    for none in ("", None):
        assert month_of(none, date(2024, 5, 1)) == (2024, 5)
    for bad in ("2023-13", "2023-00", "x", "2023-1-1", "0000-01", "10000-01", "-1-01", "2023-\u0661\u0662"):
        assert month_of(bad, date(2024, 5, 1)) is None, bad  # the page's 400
    assert shift_month(2024, 1, -1) == (2023, 12) and shift_month(2024, 12, 1) == (2025, 1)
    assert shift_month(2024, 5, 0) == (2024, 5)
