"""The rule of what an export of a time range holds of a line (``projections.ranges``), on lines alone."""

from __future__ import annotations

from projections.lines import Line, Removal, Version
from projections.ranges import LineEvent, held, line_events, may_hold, positions_in
from tests.factories import at

ROOM = "lobby@conference.localhost"

# Posted at 10 (position 1), corrected at 20 (2, backfilled) and 30 (3), removed at 40 (4, imported).
MESSAGE = Line(
    id=1, room=ROOM, at=at(10), kind="message", nick="alice", body="third", edited=True, edited_at=at(30),
    edit_position=3, versions=(Version(body="first", at=at(10), position=1),
                               Version(body="second", at=at(20), position=2, capture="backfill")),
    removed=Removal(at=at(40), position=4, moderated=True, by_nick="mod", capture="import"),
)  # fmt: skip


def test_a_message_is_made_of_its_post_its_corrections_and_its_removal():
    assert line_events(MESSAGE) == [
        LineEvent(what="created", at=at(10), position=1), LineEvent(what="edited", at=at(20), position=2, capture="backfill"),
        LineEvent(what="edited", at=at(30), position=3), LineEvent(what="removed", at=at(40), position=4, capture="import"),
    ]  # fmt: skip
    join = Line(id=7, room=ROOM, at=at(5), kind="joined", nick="bob", capture="history")
    assert line_events(join) == [LineEvent(what="created", at=at(5), position=7, capture="history")]


def test_a_range_holds_a_line_an_event_in_it_made_or_changed_as_it_read_at_the_ranges_end():
    # Posted in the range, changed after it: as it was at the end, its later changes listed, not applied.
    kept = held(MESSAGE, at(0), at(25))
    assert (kept.line.body, kept.line.removed, [v.body for v in kept.line.versions]) == ("second", None, ["first"])
    assert [(c.what, c.position) for c in kept.later] == [("edited", 3), ("removed", 4)]
    assert positions_in(MESSAGE, at(0), at(25)) == [1, 2]
    # Posted before the range, removed in it: held, removed, nothing later.
    kept = held(MESSAGE, at(35), at(50))
    assert kept.line.removed.position == 4 and kept.later == () and positions_in(MESSAGE, at(35), at(50)) == [4]
    # Nothing of it in the range: not held.
    assert held(MESSAGE, at(11), at(20)) is None and positions_in(MESSAGE, at(11), at(20)) == []
    assert held(MESSAGE, at(41), None) is None
    # Created at or after the end: not held, whatever its times.
    assert held(MESSAGE, None, at(10)) is None
    # Open ranges: the line as it is.
    assert held(MESSAGE, None, None).line is MESSAGE and positions_in(MESSAGE, None, None) == [1, 2, 3, 4]


def test_a_gap_is_held_wherever_its_span_meets_the_range():
    gap = Line(id=9, room=ROOM, at=at(100), kind="gap", gap_end=at(200), gap_kind="messages")
    assert held(gap, at(150), at(160)) is not None and held(gap, at(200), at(300)) is not None
    assert held(gap, at(0), at(101)) is not None
    assert held(gap, at(0), at(100)) is None and held(gap, at(201), None) is None


def test_a_hit_may_be_held_if_created_before_the_end_and_in_the_range_or_changed_since():
    assert may_hold(at(10), False, at(0), at(20)) and may_hold(at(10), True, at(15), at(20))
    assert not may_hold(at(10), False, at(15), at(20)) and not may_hold(at(20), True, at(0), at(20))
