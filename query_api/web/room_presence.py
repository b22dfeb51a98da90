"""A room page's presence chart: the day's spans from the presence view, one row per person."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import NamedTuple

from markupsafe import Markup

from archive.times import parse_day
from projections.presence.logic import unknown_why
from projections.presence.queries import MAX_SPANS, MAX_STAYS

from ..context import api
from ..errors import bad_parameter
from .presence_chart import NARROW, WIDE, PresenceSpan, occupants_at, presence_svg


class DayPresence(NamedTuple):
    chart: Markup | None  # SVG, wide and narrow; None: no presence view
    here: list | None  # who was there at ``at``; None: not known
    partial: str | None  # why the chart shows only part of the day; None: it shows all of it
    unknown: str | None = None  # why who was there at ``at`` is not known


def day_presence(room: str, day: date, at: datetime | None, who) -> DayPresence:
    """The day's presence chart and, for ``?at=``, who was there then (None: not known, and why: by the
    presence view's one rule, ``unknown_why``, as the API answers). The answer comes from the day's bars:
    an ``at`` on another day is a bad request, not "nobody"."""
    presence = getattr(api().views, "presence", None)
    if presence is None:
        return DayPresence(None, [], None)
    start, end = parse_day(day.isoformat())
    if at is not None and not start <= at < end:
        raise bad_parameter("at", f"is not on the day shown ({day.isoformat()}): name its own day, or none")
    known_until, away_since = api().views.last_known(room)
    spans, whole = day_spans(presence, room, start, end, by_jid=who.sees_jids)
    gaps = presence.gaps(room, start=start, end=end)
    here, unknown = [], None
    if at is not None:
        unknown = unknown_why(at, gaps, known_until, away_since) if known_until is not None else "nothing is archived yet"
        # (From the bars before they are cut at the last known moment, which is itself known.)
        here = None if unknown else occupants_at(spans, at)
    spans = until_known(spans, known_until)
    label = f"presence in {room} on {day.isoformat()}"
    charts = [
        presence_svg(spans, start, end, gaps=gaps, label=label, layout=layout, known_until=known_until)
        for layout in (WIDE, NARROW)
    ]
    partial = None if whole else (
        f"The chart shows only its first people: the day holds more presence than a page reads ({MAX_SPANS:,} "
        f"changes, {MAX_STAYS:,} visits), and who was here at a moment counts those people only."
    )
    return DayPresence(Markup("".join(charts)), here, partial, unknown)  # presence_svg escapes every nick itself


def until_known(spans: list[PresenceSpan], known_until: datetime | None) -> list[PresenceSpan]:
    """The spans cut at the archive's last known moment: after it nobody is claimed (the chart
    shows that time empty, and ``at`` there finds nobody)."""
    if known_until is None:
        return []
    return [
        span if span.end is not None and span.end <= known_until else replace(span, end=known_until)
        for span in spans if span.start < known_until
    ]  # fmt: skip


def day_spans(presence, room: str, start: datetime, end: datetime, *, by_jid: bool = False) -> tuple[list[PresenceSpan], bool]:
    """Everyone's presence spans in [start, end), from the presence view's queries, and whether that is all.

    A person is the stay's occupant-id (XEP-0421, which rooms give every occupant),
    else its real JID if ``by_jid`` (only for callers who may see real JIDs: for the
    others, linking two nicks to one account would reveal what the room hides), else
    the stay's first nick. People get opaque keys: the page never carries the
    occupant-id or the JID. One page of ``people_stays`` is read (anyone may view a public room's
    busiest day): the chart of a day of more shows its first people's, and says so.
    """
    read = presence.people_stays(room, start, end)
    people: dict[str, str] = {}
    spans = []
    for stay in read.stays:
        identity = (
            f"occupant:{stay.occupant_id}" if stay.occupant_id
            else f"jid:{stay.jid.partition('/')[0].lower()}" if stay.jid and by_jid
            else f"nick:{stay.spans[0].nick if stay.spans else stay.nicks[0]}"
        )  # fmt: skip
        person = people.setdefault(identity, f"p{len(people) + 1}")
        spans += [PresenceSpan(span.nick, span.start, span.end, span.show, person) for span in stay.spans]
    return spans, read.next is None and all(stay.complete for stay in read.stays)
