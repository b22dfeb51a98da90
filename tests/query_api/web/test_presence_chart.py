"""The presence chart is a pure function: spans in, SVG out."""

from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import pytest

from projections.presence.logic import BEFORE_ARCHIVE, EARLIEST, Gap

from query_api.web.presence_chart import (
    LABEL_WIDTH,
    NARROW,
    PLOT_WIDTH,
    STATUS_COLOURS,
    PresenceSpan,
    occupancy,
    occupants_at,
    presence_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
DAY = datetime(2024, 5, 1, tzinfo=timezone.utc)
END = DAY + timedelta(days=1)


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def bars(svg: str):
    root = ElementTree.fromstring(svg)
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


SPANS = [
    PresenceSpan("alice", at(6), at(12)),
    PresenceSpan("alice", at(12), at(18), "away"),
    PresenceSpan("bob", at(9), at(10), "dnd"),
    PresenceSpan("carol", at(20), None),
]


def test_one_row_per_occupant_and_a_bar_per_span_coloured_by_status():
    svg = presence_svg(SPANS, DAY, END)
    root = ElementTree.fromstring(svg)
    nicks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "nick"]
    assert nicks == ["alice", "bob", "carol"]  # order of first appearance
    found = [(b.get("data-nick"), b.get("data-status"), b.get("fill")) for b in bars(svg)]
    assert found == [
        ("alice", "available", STATUS_COLOURS["available"]),
        ("alice", "away", STATUS_COLOURS["away"]),
        ("bob", "dnd", STATUS_COLOURS["dnd"]),
        ("carol", "available", STATUS_COLOURS["available"]),
    ]
    rows = {b.get("data-nick"): float(b.get("y")) for b in bars(svg)}
    assert rows["alice"] < rows["bob"] < rows["carol"]


def test_bars_are_placed_in_proportion_to_time_and_open_spans_run_to_the_end():
    svg = presence_svg(SPANS, DAY, END)
    alice = bars(svg)[0]
    assert float(alice.get("x")) == LABEL_WIDTH + PLOT_WIDTH * 6 / 24
    assert float(alice.get("width")) == PLOT_WIDTH * 6 / 24
    carol = bars(svg)[-1]
    assert float(carol.get("x")) + float(carol.get("width")) == LABEL_WIDTH + PLOT_WIDTH
    assert int(carol.get("data-end")) == int(END.timestamp())


def test_spans_outside_the_window_are_clipped_or_dropped():
    spans = [PresenceSpan("early", at(-5), at(-1)), PresenceSpan("overnight", at(-3), at(2))]
    found = bars(presence_svg(spans, DAY, END))
    assert [b.get("data-nick") for b in found] == ["overnight"]
    assert float(found[0].get("x")) == LABEL_WIDTH
    assert int(found[0].get("data-start")) == int(DAY.timestamp())


def test_occupancy_counts_distinct_occupants_at_each_change():
    assert occupancy(SPANS) == [(at(6), 1), (at(9), 2), (at(10), 1), (at(18), 0), (at(20), 1)]
    svg = presence_svg(SPANS, DAY, END)
    polygon = next(ElementTree.fromstring(svg).iter(f"{SVG}polygon"))
    assert polygon.get("data-peak") == "2"


def test_who_was_here_at_a_moment():
    assert occupants_at(SPANS, at(9.5)) == [("alice", "available"), ("bob", "dnd")]
    assert occupants_at(SPANS, at(13)) == [("alice", "away")]
    assert occupants_at(SPANS, at(18)) == []  # ends are exclusive
    assert occupants_at(SPANS, at(23)) == [("carol", "available")]


def test_nicks_are_escaped_and_the_svg_stays_well_formed():
    nick = '<script>alert(1)</script>&"'
    svg = presence_svg([PresenceSpan(nick, at(1), at(2))], DAY, END, label="<b>room</b>")
    assert "<script>" not in svg
    root = ElementTree.fromstring(svg)
    assert [b.get("data-nick") for b in bars(svg)] == [nick]
    assert root.get("aria-label").startswith("<b>room</b>: 1 person;")


def test_an_empty_day_still_draws_a_chart():
    svg = presence_svg([], DAY, END)
    root = ElementTree.fromstring(svg)
    assert bars(svg) == []
    assert next(root.iter(f"{SVG}polygon")).get("data-peak") == "0"


def test_archive_gaps_are_drawn_hatched_over_the_plot():
    gaps = [Gap(id=1, room="r", start=at(15), end=at(16), kind="presence", explanation="the listener <was> away"),
            Gap(id=-1, room="r", start=EARLIEST, end=at(1), kind=BEFORE_ARCHIVE), Gap(id=2, room="r", start=at(30),
            end=at(31), kind="all")]
    svg = presence_svg(SPANS, DAY, END, gaps=gaps)
    gaps = [r for r in ElementTree.fromstring(svg).iter(f"{SVG}rect") if r.get("class") == "gap"]
    found = [(float(g.get("x")), float(g.get("width"))) for g in gaps]
    expected = [
        (LABEL_WIDTH + PLOT_WIDTH * 15 / 24, PLOT_WIDTH / 24),
        (LABEL_WIDTH, PLOT_WIDTH / 24),  # clipped to the window; the one outside is dropped
    ]
    assert found == [(pytest.approx(x, abs=0.01), pytest.approx(w, abs=0.01)) for x, w in expected]
    assert gaps[0].get("fill") == "url(#unknown-wide)"
    # each says why (the page's script shows it for a moment inside), dated within the window
    assert [g.get("data-why") for g in gaps] == ["the listener <was> away", "before the archive began"]
    assert gaps[1].get("data-start") == f"{DAY.timestamp():.0f}"


def test_one_row_per_person_with_nick_changes_marked_inside_the_row():
    spans = [
        PresenceSpan("alice", at(6), at(8), person="occ-1"),
        PresenceSpan("alice_", at(8), at(9), "away", person="occ-1"),
        PresenceSpan("bob", at(7), at(10)),
        PresenceSpan("alice", at(9), at(11), person="occ-1"),
        PresenceSpan("alice", at(12), at(13), person="other@example.org"),  # someone else using the nick later
    ]
    svg = presence_svg(spans, DAY, END)
    root = ElementTree.fromstring(svg)
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "nick"]
    assert [t.text for t in labels] == ["alice", "bob", "alice"]
    assert labels[0].find(f"{SVG}title").text == "alice → alice_ → alice"
    rows = {}
    for bar in bars(svg):
        rows.setdefault(bar.get("data-person"), set()).add(float(bar.get("y")))
    assert all(len(ys) == 1 for ys in rows.values()) and len(rows) == 3  # one row each, three rows
    changes = [(c.get("data-old-nick"), c.get("data-nick")) for c in root.iter(f"{SVG}rect") if c.get("class") == "nick-change"]
    assert changes == [("alice", "alice_"), ("alice_", "alice")]
    assert occupancy(spans)[:2] == [(at(6), 1), (at(7), 2)]  # a nick change is not a second person


def test_the_narrow_layout_fits_a_phone_and_still_spans_the_whole_day():
    svg = presence_svg(SPANS, DAY, END, layout=NARROW)
    root = ElementTree.fromstring(svg)
    assert root.get("width") == "360" and "narrow" in root.get("class")
    hours = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "hour"]
    assert hours == ["00:00", "06:00", "12:00", "18:00", "00:00"]
    carol = bars(svg)[-1]
    assert float(carol.get("x")) + float(carol.get("width")) == NARROW.label_width + NARROW.plot_width
    assert root.get("tabindex") == "0"  # reachable from the keyboard
    wide = ElementTree.fromstring(presence_svg(SPANS, DAY, END))
    ids = [e.get("id") for tree in (root, wide) for e in tree.iter() if e.get("id")]
    assert len(ids) == len(set(ids))  # both on one page: no clashing ids
