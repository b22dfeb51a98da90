"""The widget's feed: the last lines of the transcript view, then the lines changed since a cursor."""

from __future__ import annotations

from archive import events as ev
from projections.follower import LogFollower
from projections.views import Views
from query_api.web import widget_feed
from tests.factories import make, message

ROOM = "lobby@conference.localhost"
SECRET = b"the server's key of the feed's author keys"


def _catch_up(store, views):
    for projection in views.projections():
        LogFollower(store, projection, commit_interval=60).catch_up()


def test_recent_then_since_sends_new_and_changed_lines_and_takes_away_absorbed_ones(event_store, tmp_path):
    views = Views(f"sqlite:///{tmp_path}/views.sqlite", event_store)
    first = event_store.append([
        make(ev.OccupantJoined, 0, nick="alice", occupant_id="a"),
        message(1, "helo", "alice", message_id="m1", stanza_id="s1", occupant_id="a"),
        make(ev.PresenceChanged, 2, nick="alice", show="away"),  # not a line: never sent
    ])[1].position  # fmt: skip
    _catch_up(event_store, views)
    items, cursor = widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=SECRET)
    assert [(i["kind"], i["body"]) for i in items] == [("joined", None), ("message", "helo")]
    items, cursor = widget_feed.since(views.transcripts, ROOM, cursor, presence=views.presence, secret=SECRET)
    assert items == [] and cursor["r"] == widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=SECRET)[1]["r"]

    orphan = event_store.append([make(ev.MessageCorrected, 3, nick="bob", replaces_id="m9", body="fixed, b",
                                      occupant_id="b")])[0].position  # its message is not archived yet
    _catch_up(event_store, views)
    items, cursor = widget_feed.since(views.transcripts, ROOM, cursor, presence=views.presence, secret=SECRET)
    assert [(i["id"], i["body"], i["edited"]) for i in items] == [(orphan, "fixed, b", True)]

    recorded = event_store.append([
        make(ev.MessageCorrected, 4, nick="alice", replaces_id="m1", body="hello", occupant_id="a"),
        make(ev.MessageRetracted, 5, target_id="s1", moderated=True, by_nick="mod"),
        message(0.5, "fxed, b", "bob", message_id="m9", stanza_id="s9", occupant_id="b"),  # backfilled
    ])  # fmt: skip
    _catch_up(event_store, views)
    items, cursor = widget_feed.since(views.transcripts, ROOM, cursor, presence=views.presence, secret=SECRET)
    assert [(i["kind"], i["id"], i.get("body"), i.get("removed")) for i in items] == [
        ("gone", orphan, None, None),  # taken into its message
        ("message", first, None, True),  # corrected, then removed: a tombstone
        ("message", recorded[2].position, "fixed, b", False),
    ]
    assert widget_feed.since(views.transcripts, ROOM, cursor, presence=views.presence, secret=SECRET) == ([], cursor)
    views.close()


def test_a_cursor_is_a_log_position():
    assert widget_feed.valid_cursor({"r": 12})
    assert widget_feed.valid_cursor({"r": 12, "i": 7})  # within the lines of the event at 12, after line 7
    assert widget_feed.valid_cursor({"r": 12, "t": -5, "k": 9})  # no new line not late before ts -5, of room 9
    for bad in ({"r": -1}, {"r": "12"}, {"r": True}, {}, {"p": 1, "t": 0}, {"r": 2**63},
                {"r": 12, "i": -1}, {"r": 12, "i": None}, {"r": 12, "i": "7"}, {"r": 12, "i": 2**64},
                {"r": 12, "t": "5"}, {"r": 12, "t": 2**63}, {"r": 12, "t": -(2**63) - 1}, {"r": 12, "k": -1}):
        assert not widget_feed.valid_cursor(bad)


def test_a_page_of_the_feed_holds_at_most_its_limit_of_lines_and_the_next_goes_on_within_an_event(
        event_store, tmp_path, monkeypatch):
    """A message taking in the correction that awaited it changes two lines at one position: the feed completed
    a page with every line of its last event (a page longer than its limit, by as many lines as one event
    changed); it now ends at its limit and the next page goes on after its last line."""
    monkeypatch.setattr(widget_feed, "MAX_ITEMS", 1)
    views = Views(f"sqlite:///{tmp_path}/views.sqlite", event_store)
    orphan = event_store.append([make(ev.MessageCorrected, 1, nick="bob", replaces_id="m9", body="fixed",
                                      stanza_id="c1")])[0].position  # its message is not archived yet
    _catch_up(event_store, views)
    _, cursor = widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=SECRET)
    message_at = event_store.append([message(0.5, "fxed", "bob", message_id="m9", stanza_id="s9")])[0].position
    _catch_up(event_store, views)
    pages = []
    while (page := widget_feed.since(views.transcripts, ROOM, cursor, presence=views.presence, secret=SECRET))[0]:
        pages.append([(i["kind"], i["id"], i.get("body")) for i in page[0]])
        cursor = page[1]
        assert len(pages) <= 3
    assert pages == [[("gone", orphan, None)], [("message", message_at, "fixed")]]
    views.close()


def test_a_line_s_author_is_a_key_which_its_jid_cannot_be_read_from_nor_matched_across_rooms(event_store, tmp_path):
    views = Views(f"sqlite:///{tmp_path}/views.sqlite", event_store)
    event_store.append([
        make(ev.OccupantJoined, 0, nick="ann", jid="ann@x/phone"),
        message(1, "hi", "ann", jid="ann@x/phone"),
        message(2, "hi again", "ann", jid="ann@x/laptop"),  # the same occupant, from another client
        make(ev.OccupantLeft, 3, nick="ann", jid="ann@x/phone"),
        make(ev.OccupantJoined, 4, nick="ann", jid="mallory@y/a"),  # a namesake in the freed nick
        message(5, "me too", "ann", jid="mallory@y/a"),
        message(6, "who am I", "bob"),  # a room that hides real JIDs from the archive
        make(ev.OccupantJoined, 7, nick="ann", jid="ann@x/phone", room="other@conference.localhost"),
    ])  # fmt: skip
    _catch_up(event_store, views)
    items = widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=SECRET)[0]
    authors = [i["author"] for i in items]
    assert authors[0] == authors[1] == authors[2] == authors[3] != authors[4] == authors[5] and authors[6] is None
    assert all("ann" not in a and "mallory" not in a for a in authors[:6])
    elsewhere = widget_feed.recent(views.transcripts, "other@conference.localhost", presence=views.presence,
                                   secret=SECRET)[0]
    assert elsewhere[0]["author"] not in authors  # one person's lines are not matched across rooms
    another = widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=b"another server")[0]
    assert another[0]["author"] != authors[0]
    views.close()


def test_a_line_s_author_key_is_of_one_stay_in_the_room_never_linking_two(event_store, tmp_path):
    """The reviewer's case: in a room that shows its occupants no real JIDs (its listener, a moderator, records
    them), alice joins, speaks, is renamed alicia (heard live: the same stay), leaves, comes back as anon42 and
    later, after leaving, as alice again. The room hides that these are one person: the feed's keys, equal
    within a stay (join, messages, rename, leave: the widget tells a renamed author as the archive does), differ
    from one stay to the next (they were one key of her JID, for any visitor)."""
    views = Views(f"sqlite:///{tmp_path}/views.sqlite", event_store)
    alice = "alice@x/laptop"
    event_store.append([
        make(ev.OccupantJoined, 0, nick="alice", jid=alice),
        message(1, "hi", "alice", jid=alice),
        make(ev.NickChanged, 2, old_nick="alice", new_nick="alicia", jid=alice),
        message(3, "still me", "alicia", jid=alice),
        make(ev.OccupantLeft, 4, nick="alicia", jid=alice),
        make(ev.OccupantJoined, 5, nick="anon42", jid=alice),
        message(6, "who am I", "anon42", jid=alice),
        make(ev.OccupantLeft, 7, nick="anon42", jid=alice),
        make(ev.OccupantJoined, 7, nick="alice", jid=alice),  # back at once, in her first nick
        message(8, "guess", "alice", jid=alice),
    ])  # fmt: skip
    _catch_up(event_store, views)
    items = widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=SECRET)[0]
    assert [i["kind"] for i in items] == ["joined", "message", "nick_changed", "message", "left"] + [
        "joined", "message", "left"] + ["joined", "message"]
    stays = [{i["author"] for i in items[:5]}, {i["author"] for i in items[5:8]}, {i["author"] for i in items[8:]}]
    assert [len(keys) for keys in stays] == [1, 1, 1] and len(set.union(*stays)) == 3
    views.close()


def test_the_feed_goes_only_as_far_as_the_presence_view_which_tells_the_stays(event_store, tmp_path):
    """The views commit apart: a line the presence view has not reached yet waits for it (its stay unknown,
    its key could only be a guess: the stay before, linking the two), then comes with its stay's key."""
    views = Views(f"sqlite:///{tmp_path}/views.sqlite", event_store)
    alice = "alice@x/laptop"
    event_store.append([make(ev.OccupantJoined, 0, nick="alice", jid=alice), message(1, "hi", "alice", jid=alice)])
    _catch_up(event_store, views)
    items, cursor = widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=SECRET)
    first = items[1]["author"]
    event_store.append([
        make(ev.OccupantLeft, 2, nick="alice", jid=alice),
        make(ev.OccupantJoined, 3, nick="alice", jid=alice),
        message(4, "again", "alice", jid=alice),
    ])  # fmt: skip
    transcripts, presence = views.projections()  # the presence view lags
    LogFollower(event_store, transcripts, commit_interval=60).catch_up()
    waiting, cursor = widget_feed.since(views.transcripts, ROOM, cursor, presence=views.presence, secret=SECRET)
    assert waiting == [] and cursor["r"] == 2
    assert [i["body"] for i in widget_feed.recent(views.transcripts, ROOM, presence=views.presence,
                                                  secret=SECRET)[0]] == [None, "hi"]
    # The last lines, less those: not lines further back in their place (the widget's lines begin where they did).
    assert widget_feed.recent(views.transcripts, ROOM, presence=views.presence, secret=SECRET, limit=2)[0] == []
    LogFollower(event_store, presence, commit_interval=60).catch_up()
    items, _ = widget_feed.since(views.transcripts, ROOM, cursor, presence=views.presence, secret=SECRET)
    assert [(i["kind"], i["author"] == first) for i in items] == [("left", True), ("joined", False),
                                                                  ("message", False)]
    assert items[1]["author"] == items[2]["author"]
    views.close()


def test_a_line_in_no_stay_the_presence_view_knows_has_a_key_of_its_own(event_store, tmp_path):
    """History from before the archive watched the room (or from a gap) names a JID but no stay: its key
    matches no other line's, so it links nothing."""
    views = Views(f"sqlite:///{tmp_path}/views.sqlite", event_store)
    old = {"jid": "alice@x/laptop", "capture": ev.Capture.HISTORY}
    event_store.append([message(1, "one", "alice", **old), message(2, "two", "alice", **old),
                        make(ev.OccupantJoined, 3, nick="alice", jid="alice@x/laptop")])
    _catch_up(event_store, views)
    authors = [i["author"] for i in widget_feed.recent(views.transcripts, ROOM, presence=views.presence,
                                                       secret=SECRET)[0]]
    assert len(set(authors)) == 3 and None not in authors
    views.close()
