"""The presence timeline as SVG: a pure function from presence spans to markup.

One row per person across the window (a person is an occupant-id or a real JID
where the room reveals one, else a nick), its bars coloured by status (show),
a nick change marked inside the row where it happened, and under them the
room's occupancy over time as a step line. Every bar carries its nick and times
as data attributes, so the page's small script can answer "who was here at T"
for a click or a key press without asking the server again. A ``Layout`` sizes
the chart: the wide one for screens, the narrow one for phones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from projections.presence.logic import BEFORE_ARCHIVE, Gap

STATUS_COLOURS = {
    "available": "#2e9d4f",
    "chat": "#1b6e35",
    "away": "#e0a800",
    "xa": "#d9731a",
    "dnd": "#c62828",
}
UNKNOWN_COLOUR = "#8a8a8a"



@dataclass(frozen=True)
class Layout:
    name: str
    width: int
    label_width: int
    right_margin: int
    hour_step: int  # hours between axis labels over a day
    legend_per_row: int
    nick_limit: int  # characters of a row label

    @property
    def plot_width(self) -> int:
        return self.width - self.label_width - self.right_margin


WIDE = Layout("wide", 960, 150, 20, 2, 6, 20)
NARROW = Layout("narrow", 360, 76, 14, 6, 3, 10)
WIDTH, LABEL_WIDTH, PLOT_WIDTH = WIDE.width, WIDE.label_width, WIDE.plot_width
AXIS_HEIGHT = 26
ROW_HEIGHT = 20
BAR_HEIGHT = 14
OCCUPANCY_GAP = 22
OCCUPANCY_HEIGHT = 70
LEGEND_ROW = 22
CHANGE_MARK = "#ffffff"


@dataclass(frozen=True)
class PresenceSpan:
    """An occupant in the room with one status, from ``start`` until ``end`` (None: still there)."""

    nick: str
    start: datetime
    end: datetime | None = None
    show: str | None = None  # None means plain "available"
    person: str = ""  # who this is across nick changes (occupant-id, real JID); empty: the nick


def person_of(span: PresenceSpan) -> str:
    return span.person or f"nick:{span.nick}"


def status_of(span: PresenceSpan) -> str:
    return span.show or "available"


def clip(spans: Iterable[PresenceSpan], start: datetime, end: datetime) -> list[PresenceSpan]:
    """The parts of ``spans`` inside [start, end); open spans end at ``end``."""
    clipped = []
    for span in spans:
        span_end = min(span.end or end, end)
        span_start = max(span.start, start)
        if span_start < span_end:
            clipped.append(PresenceSpan(span.nick, span_start, span_end, span.show, span.person))
    return clipped


def occupants_at(spans: Iterable[PresenceSpan], moment: datetime) -> list[tuple[str, str]]:
    """(nick, status) of everyone present at ``moment``, by nick."""
    present = {
        span.nick: status_of(span)
        for span in spans
        if span.start <= moment and (span.end is None or moment < span.end)
    }
    return sorted(present.items(), key=lambda item: item[0].casefold())


def occupancy(spans: Sequence[PresenceSpan]) -> list[tuple[datetime, int]]:
    """(time, number of distinct occupants from then on) at every change, in time order.

    A person with several overlapping or touching spans (status or nick changes) counts once.
    """
    changes: dict[datetime, list[tuple[str, int]]] = {}
    for span in spans:
        changes.setdefault(span.start, []).append((person_of(span), +1))
        if span.end is not None:
            changes.setdefault(span.end, []).append((person_of(span), -1))
    per_nick: dict[str, int] = {}
    steps: list[tuple[datetime, int]] = []
    for moment in sorted(changes):
        for nick, delta in changes[moment]:
            per_nick[nick] = per_nick.get(nick, 0) + delta
        count = sum(1 for n in per_nick.values() if n > 0)
        if not steps or steps[-1][1] != count:
            steps.append((moment, count))
    return steps


def presence_svg(
    spans: Iterable[PresenceSpan],
    start: datetime,
    end: datetime,
    *,
    gaps: Iterable[Gap] = (),
    label: str = "",
    layout: Layout = WIDE,
    known_until: datetime | None = None,
) -> str:
    """The SVG chart of ``spans`` over [start, end) (usually one UTC day).

    ``gaps`` are the presence view's gaps (presence unknown: archive gaps, the time
    before the archive began), drawn hatched across all rows, each with why.
    After ``known_until`` (the archive's last known moment; spans are cut there by
    the caller) the chart is empty. The page's script says "not known" in a gap
    or after ``known_until``, as ``presence.logic.unknown_why`` decides for the server.
    The chart is focusable: the page's script moves a cursor with the arrow keys.
    """
    spans = clip(spans, start, end)
    rows = _rows(spans)
    total = (end - start).total_seconds()
    label_width, plot_width = layout.label_width, layout.plot_width

    def x(moment: datetime) -> float:
        return round(label_width + plot_width * (moment - start).total_seconds() / total, 2)

    bars_height = max(len(rows), 1) * ROW_HEIGHT
    occupancy_top = AXIS_HEIGHT + bars_height + OCCUPANCY_GAP
    legend_rows = -(-(len(STATUS_COLOURS) + 1) // layout.legend_per_row)
    height = occupancy_top + OCCUPANCY_HEIGHT + 8 + legend_rows * LEGEND_ROW
    hatch = f"unknown-{layout.name}"
    description = (
        f"{label or 'presence timeline'}: {len(rows)} {'person' if len(rows) == 1 else 'people'}; "
        "focus and use the arrow keys (with Shift: by the hour) to hear who was here at a moment"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="presence-chart {layout.name}" width="{layout.width}" '
        f'height="{height}" viewBox="0 0 {layout.width} {height}" role="img" tabindex="0" '
        f'aria-label="{escape(description)}" '
        f'data-start="{start.timestamp():.0f}" data-end="{end.timestamp():.0f}" '
        f'data-plot-x="{label_width}" data-plot-width="{plot_width}"'
        + (f' data-known-until="{known_until.timestamp():.0f}"' if known_until else "") + ">",
        f'<rect class="plot" x="{label_width}" y="{AXIS_HEIGHT}" width="{plot_width}" '
        f'height="{bars_height + OCCUPANCY_GAP + OCCUPANCY_HEIGHT}" fill="#fafafa" stroke="#ddd"/>',
    ]
    bottom = AXIS_HEIGHT + bars_height + OCCUPANCY_GAP + OCCUPANCY_HEIGHT
    parts += _axis(start, end, layout, bottom)
    parts += _gaps(gaps, start, end, x, bottom, hatch)
    for index, (row_label, row_spans) in enumerate(rows):
        top = AXIS_HEIGHT + index * ROW_HEIGHT
        parts.append(
            f'<text class="nick" x="{label_width - 6}" y="{top + BAR_HEIGHT}" text-anchor="end" '
            f'font-size="12" font-family="sans-serif" fill="#1d1d1f">{escape(_shorten(row_label, layout.nick_limit))}'
            f"<title>{escape(' → '.join(_nicks(row_spans)))}</title></text>"
        )
        previous_nick = row_spans[0].nick
        for span in row_spans:
            status = status_of(span)
            left, right = x(span.start), x(span.end)
            parts.append(
                f'<rect class="bar" x="{left}" y="{top + (ROW_HEIGHT - BAR_HEIGHT) / 2}" '
                f'width="{max(right - left, 1)}" height="{BAR_HEIGHT}" '
                f'fill="{STATUS_COLOURS.get(status, UNKNOWN_COLOUR)}" data-nick="{escape(span.nick)}" '
                f'data-person="{escape(person_of(span))}" '
                f'data-status="{escape(status)}" data-start="{span.start.timestamp():.0f}" '
                f'data-end="{span.end.timestamp():.0f}"><title>{escape(span.nick)}: {escape(status)}, '
                f'{span.start:%H:%M}–{span.end:%H:%M}</title></rect>'
            )
            if span.nick != previous_nick:
                parts.append(_nick_change(span, previous_nick, left, top))
                previous_nick = span.nick
    parts += _occupancy(spans, start, end, x, occupancy_top, label_width)
    parts += _legend(occupancy_top + OCCUPANCY_HEIGHT + 8, layout, hatch)
    parts.append(
        f'<line class="cursor" x1="{label_width}" x2="{label_width}" y1="{AXIS_HEIGHT}" '
        f'y2="{occupancy_top + OCCUPANCY_HEIGHT}" stroke="#1a4d8f" stroke-width="2" visibility="hidden"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _nick_change(span: PresenceSpan, old: str, left: float, top: float) -> str:
    """A white notch where the nick changed, saying from what to what."""
    return (
        f'<rect class="nick-change" x="{left - 1}" y="{top + 1}" width="2" height="{ROW_HEIGHT - 2}" '
        f'fill="{CHANGE_MARK}" stroke="#1d1d1f" stroke-width="0.5" data-nick="{escape(span.nick)}" '
        f'data-old-nick="{escape(old)}"><title>{escape(old)} is now known as {escape(span.nick)}, '
        f"{span.start:%H:%M}</title></rect>"
    )


def _nicks(spans: list[PresenceSpan]) -> list[str]:
    nicks: list[str] = []
    for span in spans:
        if not nicks or nicks[-1] != span.nick:
            nicks.append(span.nick)
    return nicks


def _gaps(gaps, start: datetime, end: datetime, x, bottom: float, hatch: str) -> list[str]:
    parts = [
        f'<defs><pattern id="{hatch}" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#f1f1f1"/>'
        '<line x1="0" y1="0" x2="0" y2="8" stroke="#c9c9c9" stroke-width="4"/></pattern></defs>'
    ]
    for gap in gaps:
        # Drawn and dated within the window: a gap before the archive began starts at the earliest moment.
        gap_start, gap_end = max(gap.start, start), min(gap.end, end)
        left, right = x(gap_start), x(gap_end)
        if right <= left:
            continue
        what = "before the archive began" if gap.kind == BEFORE_ARCHIVE else "archive gap"
        parts.append(
            f'<rect class="gap" x="{left}" y="{AXIS_HEIGHT}" width="{right - left}" height="{bottom - AXIS_HEIGHT}" '
            f'fill="url(#{hatch})" data-start="{gap_start.timestamp():.0f}" data-end="{gap_end.timestamp():.0f}" '
            f'data-why="{escape(gap.explanation or what)}">'
            f"<title>{what}: presence unknown {gap_start:%H:%M}–{gap_end:%H:%M}</title></rect>"
        )
    return parts


def _rows(spans: list[PresenceSpan]) -> list[tuple[str, list[PresenceSpan]]]:
    """People in order of first appearance, each labelled with its first nick of the window, with its spans."""
    rows: dict[str, list[PresenceSpan]] = {}
    for span in sorted(spans, key=lambda s: (s.start, s.nick)):
        rows.setdefault(person_of(span), []).append(span)
    return [(row[0].nick, row) for row in rows.values()]


def _shorten(nick: str, limit: int = 20) -> str:
    return nick if len(nick) <= limit else nick[: limit - 1] + "…"


def _axis(start: datetime, end: datetime, layout: Layout, bottom: float) -> list[str]:
    hours = max(int((end - start).total_seconds() // 3600), 1)
    step = 1 if hours <= 12 and layout is WIDE else layout.hour_step if hours <= 24 else max(hours // 12, 1)
    parts = []
    for hour in range(0, hours + 1, step):
        moment = start.timestamp() + hour * 3600
        fraction = (moment - start.timestamp()) / (end - start).total_seconds()
        left = round(layout.label_width + layout.plot_width * fraction, 2)
        parts.append(f'<line class="tick" x1="{left}" x2="{left}" y1="{AXIS_HEIGHT - 4}" y2="{bottom}" stroke="#e4e4e4"/>')
        parts.append(
            f'<text class="hour" x="{left}" y="{AXIS_HEIGHT - 8}" text-anchor="middle" font-size="11" '
            f'font-family="sans-serif" fill="#555">{(start.hour + hour) % 24:02d}:00</text>'
        )
    return parts


def _occupancy(spans, start: datetime, end: datetime, x, top: float, label_width: int) -> list[str]:
    steps = occupancy(spans)
    peak = max((count for _, count in steps), default=0)
    bottom = top + OCCUPANCY_HEIGHT
    scale = (OCCUPANCY_HEIGHT - 10) / peak if peak else 0

    def y(count: int) -> float:
        return round(bottom - count * scale, 2)

    points = [(x(start), y(0))]
    level = 0
    for moment, count in steps:
        points += [(x(moment), y(level)), (x(moment), y(count))]
        level = count
    points += [(x(end), y(level)), (x(end), y(0))]
    path = " ".join(f"{px},{py}" for px, py in points)
    return [
        f'<text class="occupancy-label" x="{label_width - 6}" y="{top + 14}" text-anchor="end" font-size="12" '
        f'font-family="sans-serif">occupancy</text>',
        f'<text class="occupancy-peak" x="{label_width - 6}" y="{top + 30}" text-anchor="end" font-size="11" '
        f'font-family="sans-serif" fill="#555">peak {peak}</text>',
        f'<polygon class="occupancy" points="{path}" fill="#9ab8de" stroke="#1a4d8f" stroke-width="1" '
        f'data-peak="{peak}"/>',
    ]


def _legend(top: float, layout: Layout, hatch: str) -> list[str]:
    parts = []
    entries = (*STATUS_COLOURS.items(), ("archive gap", f"url(#{hatch})"))
    column_width = (layout.width - layout.label_width) // layout.legend_per_row
    for index, (status, colour) in enumerate(entries):
        row, column = divmod(index, layout.legend_per_row)
        left = layout.label_width + column * column_width
        baseline = top + row * LEGEND_ROW + 14
        parts.append(f'<rect class="legend" x="{left}" y="{baseline - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(
            f'<text x="{left + 16}" y="{baseline}" font-size="11" font-family="sans-serif" fill="#1d1d1f">{status}</text>'
        )
    return parts
