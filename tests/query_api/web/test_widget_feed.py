"""The widget's feed: lines as a transcript shows them, then what changed since a cursor."""

from __future__ import annotations

from datetime import timedelta

from archive import events as ev
from query_api.web import widget_feed
from tests.factories import at, make, message

ROOM = "lobby@conference.localhost"


def test_fold_applies_corrections_and_retractions_like_the_transcript():
    records = [
        ev.Recorded(1, make(ev.OccupantJoined, 0, nick="alice")),
        ev.Recorded(2, message(1, "helo", "alice", message_id="m1")),
        ev.Recorded(3, make(ev.MessageCorrected, 2, nick="alice", replaces_id="m1", body="hello")),
        ev.Recorded(4, message(3, "password is hunter2", "bob", stanza_id="s2")),
        ev.Recorded(5, make(ev.MessageRetracted, 4, target_id="s2", moderated=True, by_nick="alice")),
        ev.Recorded(6, make(ev.MessageCorrected, 5, nick="mallory", replaces_id="m1", body="hijacked")),
        ev.Recorded(7, make(ev.PresenceChanged, 6, nick="alice", show="away")),
    ]
    items = [widget_feed.item(line) for line in widget_feed.fold(records)]
    assert [(i["kind"], i["nick"], i["body"], i["removed"], i["edited"]) for i in items] == [
        ("joined", "alice", None, False, False),
        ("message", "alice", "hello", False, True),
        ("message", "bob", None, True, False),  # a tombstone: the text is gone
        ("message", "mallory", "hijacked", False, True),  # not the author: a line of its own
    ]


def test_since_returns_new_lines_and_changes_to_lines_shown_before(event_store):
    store = event_store
    store.append([message(0, "first", "alice", message_id="m1", stanza_id="s1")])
    cursor = {"p": store.head(), "t": at(0).timestamp()}
    store.append(
        [
            make(ev.OccupantJoined, 5, nick="bob"),
            message(6, "<b>second</b>", "bob", stanza_id="s2"),
            make(ev.MessageCorrected, 7, nick="alice", replaces_id="m1", body="first!"),
            make(ev.MessageRetracted, 8, target_id="s1"),
        ]
    )
    items, cursor = widget_feed.since(store, ROOM, cursor, now=at(10))
    assert [(i["kind"], i.get("body"), i.get("target")) for i in items] == [  # one entry per event
        ("joined", None, None),
        ("message", "<b>second</b>", None),
        ("corrected", "first!", "m1"),
        ("removed", None, "s1"),
    ]
    assert cursor == {"p": store.head(), "t": at(10).timestamp()}
    assert widget_feed.since(store, ROOM, cursor, now=at(11))[0] == []
    # an event stored late, that occurred a little before the last poll, is still picked up
    store.append([message(9, "late", "carol")])
    items, _ = widget_feed.since(store, ROOM, cursor, now=at(12))
    assert [i["body"] for i in items] == ["late"]
    too_late = {"p": store.head(), "t": (at(9) + widget_feed.LOOK_BACK + timedelta(seconds=1)).timestamp()}
    assert widget_feed.since(store, ROOM, too_late)[0] == []
