"""A room as it was at time T: occupants, subject and the transcript before later edits."""

from __future__ import annotations

import pytest

from archive import events as ev
from archive.errors import ConfigError
from projections.views import Views
from tests.factories import at, make, message
from tests.projections.conftest import catch_up

ROOM = "lobby@conference.localhost"


@pytest.fixture
def history(event_store, views):
    event_store.append([
        make(ev.SubjectChanged, 0, subject="Old topic", nick="alice"),
        make(ev.OccupantJoined, 1, nick="alice", role="moderator"),
        make(ev.OccupantJoined, 2, nick="bob"),
        message(3, "first", message_id="m1", stanza_id="s1"),
        message(4, "oops", nick="bob", stanza_id="s2"),
        make(ev.PresenceChanged, 5, nick="bob", show="away"),
        make(ev.SubjectChanged, 10, subject="New topic", nick="alice"),
        make(ev.MessageCorrected, 11, nick="alice", replaces_id="m1", body="first, edited"),
        make(ev.MessageRetracted, 12, target_id="s2", moderated=True, by_nick="alice"),
        make(ev.OccupantLeft, 13, nick="bob"),
        make(ev.ArchiveGap, 30, gap_start=at(20), gap_end=at(30)),
    ])
    catch_up(event_store, views)
    return event_store


def test_state_before_later_edits(history, views):
    state = views.room_state_at(ROOM, at(6))
    assert (state.subject, state.subject_by) == ("Old topic", "alice")
    assert {(o.nick, o.role, o.show) for o in state.occupants} == {("alice", "moderator", None), ("bob", None, "away")}
    assert state.presence_known
    messages = [line for line in state.lines if line.kind == "message"]
    assert [(line.body, line.edited, line.removed) for line in messages] == [("first", False, None), ("oops", False, None)]


def test_state_after_edits_and_inside_a_gap(history, views):
    later = views.room_state_at(ROOM, at(14))
    assert later.subject == "New topic" and [o.nick for o in later.occupants] == ["alice"]
    messages = [line for line in later.lines if line.kind == "message"]
    assert [(line.body, line.edited) for line in messages] == [("first, edited", True), (None, False)]
    assert messages[1].removed.by_nick == "alice"
    compliance = views.room_state_at(ROOM, at(14), include_originals=True)
    assert [line.body for line in compliance.lines if line.kind == "message"] == ["first, edited", "oops"]
    # The gap event is recorded at its end; the presence view still marks T inside it as unknown.
    gap_state = views.room_state_at(ROOM, at(25))
    assert not gap_state.presence_known and gap_state.gap.start == at(20)


def test_lines_window(history, views):
    state = views.room_state_at(ROOM, at(14), limit=2)
    assert [line.kind for line in state.lines] == ["subject_changed", "left"]
    assert [line.at for line in views.room_state_at(ROOM, at(14), since=at(10)).lines] == [at(10), at(13)]


def test_needs_the_store(views_url, event_store):
    with Views(views_url) as views, pytest.raises(ConfigError):
        views.room_state_at(ROOM, at(1))
