"""A room page's presence chart: the day's spans from the presence view, one row per person."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from markupsafe import Markup

from archive.times import parse_day
from projections.presence.queries import MAX_SPANS, MAX_STAYS

from ..context import api
from ..errors import bad_parameter
from .presence_chart import NARROW, WIDE, PresenceSpan, occupants_at, presence_svg


def day_presence(room: str, day: date, at: datetime | None, who):
    """The day's presence chart (SVG markup, wide and narrow) and, for ``?at=``, who was there then
    (None: not known yet, ``at`` is after the archive's last known moment). The answer comes from the
    day's bars: an ``at`` on another day is a bad request, not "nobody"."""
    presence = getattr(api().views, "presence", None)
    if presence is None:
        return None, []
    start, end = parse_day(day.isoformat())
    if at is not None and not start <= at < end:
        raise bad_parameter("at", f"is not on the day shown ({day.isoformat()}): name its own day, or none")
    known_until = api().views.known_until()
    spans = until_known(day_spans(presence, room, start, end, by_jid=who.sees_jids), known_until)
    here = []
    if at is not None:
        here = None if known_until is None or at >= known_until else occupants_at(spans, at)
    gaps = [(gap.start, gap.end) for gap in presence.gaps(room, start=start, end=end)]
    label = f"presence in {room} on {day.isoformat()}"
    charts = [
        presence_svg(spans, start, end, gaps=gaps, label=label, layout=layout, known_until=known_until)
        for layout in (WIDE, NARROW)
    ]
    return Markup("".join(charts)), here  # presence_svg escapes every nick itself


def until_known(spans: list[PresenceSpan], known_until: datetime | None) -> list[PresenceSpan]:
    """The spans cut at the archive's last known moment: after it nobody is claimed (the chart
    shows that time empty, and ``at`` there finds nobody)."""
    if known_until is None:
        return []
    return [
        span if span.end is not None and span.end <= known_until else replace(span, end=known_until)
        for span in spans if span.start < known_until
    ]  # fmt: skip


def day_spans(presence, room: str, start: datetime, end: datetime, *, by_jid: bool = False) -> list[PresenceSpan]:
    """Everyone's presence spans in [start, end), from the presence view's queries.

    A person is the stay's occupant-id (XEP-0421, which rooms give every occupant),
    else its real JID if ``by_jid`` (only for callers who may see real JIDs: for the
    others, linking two nicks to one account would reveal what the room hides), else
    the stay's first nick. People get opaque keys: the page never carries the
    occupant-id or the JID. At most MAX_SPANS spans are read (anyone may view a public room's busiest
    day): the chart of a day of more shows its first people's.
    """
    stays, left = {}, MAX_SPANS
    for nick in presence.nicks(room, start, end):
        page = presence.stays_page(room, nick=nick, start=start, end=end, limit=MAX_STAYS, spans=left)
        for stay in page.stays:
            stays[stay.id] = stay
        left -= sum(len(stay.spans) for stay in page.stays)
        if page.more:
            break
    people: dict[str, str] = {}
    spans = []
    for stay in sorted(stays.values(), key=lambda s: (s.start, s.id)):
        identity = (
            f"occupant:{stay.occupant_id}" if stay.occupant_id
            else f"jid:{stay.jid.partition('/')[0].lower()}" if stay.jid and by_jid
            else f"nick:{stay.spans[0].nick if stay.spans else stay.nicks[0]}"
        )  # fmt: skip
        person = people.setdefault(identity, f"p{len(people) + 1}")
        spans += [PresenceSpan(span.nick, span.start, span.end, span.show, person) for span in stay.spans]
    return spans
