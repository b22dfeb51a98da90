"""The room page's day chart reads a bounded amount of presence (anyone may view a public room's busiest day):
when the day holds more than it reads, the page says so rather than drawing part of the day as the whole."""

from __future__ import annotations

from archive import events as ev
from projections.presence import queries as presence_queries
from tests.factories import at, make

from ..conftest import PUBLIC

NOTICE = "only its first"


def test_a_day_of_more_presence_than_the_chart_reads_says_so(private_seeded, private_app, monkeypatch):
    monkeypatch.setattr(presence_queries, "MAX_SPANS", 5)
    day = f"{at(0):%Y-%m-%d}"
    client = private_app.test_client()
    whole = client.get(f"/rooms/{PUBLIC}?day={day}")
    assert whole.status_code == 200 and "presence-chart" in whole.text and NOTICE not in whole.text
    events = []
    for i in range(6):  # six people, a span each: one more than the chart reads
        events += [make(ev.OccupantJoined, 100 + 2 * i, room=PUBLIC, nick=f"zed{i}"),
                   make(ev.OccupantLeft, 101 + 2 * i, room=PUBLIC, nick=f"zed{i}")]
    private_seeded.store.append(events)
    private_seeded.catch_up()
    cut = client.get(f"/rooms/{PUBLIC}?day={day}")
    assert cut.status_code == 200
    assert NOTICE in cut.text, "the chart drew part of the day as if it were the whole"
