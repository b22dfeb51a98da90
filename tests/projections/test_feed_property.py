"""Property: the widget's feed, paged with any page size from any cursor it issued, delivers every line
created or changed after the cursor exactly once, in the order of (event, line), on both stores: new lines,
lines of an earlier time than their room's latest (backfilled, out of order), corrections, retractions,
corrections that meet their message, in several rooms, with commits and crashes in between."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.follower import LogFollower
from projections.transcripts.queries import ROOM as ROOM_CLAUSE
from projections.transcripts.view import GONE, ORDINARY
from query_api.web import widget_feed
from tests.projections.test_properties import ROOMS, Backend, events
from tests.query_api.web.test_widget_feed import SECRET

# One step: append some events, apply some pages of them and commit (or crash), then poll every room.
steps = st.lists(
    st.tuples(st.lists(events, max_size=8), st.integers(1, 7), st.integers(0, 4), st.booleans()),
    min_size=1,
    max_size=8,
)
NO_LINE = 2**63 - 1  # a cursor without "i": after every line of its event


def _rows(views, room: str) -> list[dict]:
    return views.recorder.read("transcripts", lambda query, _: [dict(r) for r in query(
        f"SELECT id, rev, shown, kind FROM {{lines}} WHERE {ROOM_CLAUSE} ORDER BY rev, id", (room,))])


def _sent(row: dict) -> bool:
    return row["shown"] == GONE or (row["shown"] == ORDINARY and row["kind"] in widget_feed.SHOWN_KINDS)


def _drain(views, room: str, cursor: dict, limit: int) -> dict:
    """Pages of the feed from ``cursor`` until it is empty (nothing commits meanwhile): each page is the
    next stretch of the room's rows in (rev, id) order after the cursor, at most ``limit`` rows."""
    rows = _rows(views, room)
    key = lambda row: (row["rev"], row["id"])  # noqa: E731
    start = (cursor["r"], cursor.get("i", NO_LINE))
    for _ in range(len(rows) + 2):
        items, after = widget_feed.since(views.transcripts, room, cursor, presence=views.presence, secret=SECRET,
                                         limit=limit)
        end = (after["r"], after.get("i", NO_LINE))
        window = [row for row in rows if start < key(row) <= end]
        assert len(window) <= limit
        assert sorted(item["id"] for item in items) == sorted(row["id"] for row in window if _sent(row))
        assert all(item["kind"] == "gone" for item in items[:sum(row["shown"] == GONE for row in window)])
        if not window:
            assert not items and end == start
            assert not [row for row in rows if key(row) > start]  # nothing left behind
            return after
        assert end == key(window[-1])
        cursor, start = after, end
    raise AssertionError("the feed did not end")


def _step(backend: Backend, new_events, page_size: int, pages: int, commit: bool) -> None:
    backend.store.append(new_events)
    for projection in backend.incremental.projections(["transcripts"]):  # a restart: a fresh instance
        follower = LogFollower(backend.store, projection, commit_interval=3600, page_size=page_size)
        for _ in range(pages):
            follower._step()
        if commit:
            follower._commit()
    # The presence view, which the feed waits for (its author keys), ahead: the feed goes as far as the transcripts.
    LogFollower(backend.store, backend.incremental.projections(["presence"])[0], commit_interval=3600).catch_up()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_feed_delivers_every_change_once_in_order_from_any_cursor_with_any_page_size(kind):
    examples = 25 if kind == "sqlite" else 10

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(plan=steps, data=st.data())
    def check(plan, data):
        with Backend(kind) as backend:
            views = backend.incremental
            held = {room: [] for room in ROOMS}  # the cursors clients hold, per room
            for new_events, page_size, pages, commit in plan:
                _step(backend, new_events, page_size, pages, commit)
                for room in ROOMS:
                    held[room].append(widget_feed.recent(views.transcripts, room, presence=views.presence,
                                                         secret=SECRET)[1])
                    held[room].append({"r": 0})
                    limit = data.draw(st.integers(1, 4))
                    held[room] = [_drain(views, room, cursor, limit) for cursor in held[room]]
                    # a cursor as an older server issued it (a position and a line only)
                    old = data.draw(st.sampled_from(held[room]))
                    _drain(views, room, {k: v for k, v in old.items() if k in ("r", "i")}, limit)
                    # a cursor of another room, replayed for this one: the feed of this room after its position
                    other = data.draw(st.sampled_from(held[ROOMS[0] if room != ROOMS[0] else ROOMS[1]] or [{"r": 0}]))
                    _drain(views, room, other, data.draw(st.integers(1, 4)))
            _step(backend, [], 3, 100, True)
            for room in ROOMS:
                for cursor in held[room]:
                    _drain(views, room, cursor, data.draw(st.integers(1, 4)))

    check()
