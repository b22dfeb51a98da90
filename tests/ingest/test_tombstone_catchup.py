"""A real Prosody that leaves tombstones in a room's archive (``moderation_tombstones``: what mod_muc_moderation
and ejabberd do): a message posted and moderated while the listener was away is, after the catch-up, a message
removed by the moderator, when the tombstone says, in every view; a message seen live and moderated live gets no
second moderation from the catch-up; `verify` counts the tombstones and finds nothing missing."""

from __future__ import annotations

import json

import pytest

from archive import events as ev
from archive.application import open_event_store
from archive.times import utcnow
from chat_archive.commands.verify import describe_room
from chat_archive.xmpp_users import XmppUsers
from ingest.verify import SETTLE, verify
from tests.ingest.helpers import Traffic, archived_stanza_ids, room_events, running_listener, wait_joined
from tests.query_api.one_truth import World
from tests.services.prosody import PASSWORD, listener_settings, start_prosody, unique_room, wait_for


@pytest.fixture(scope="module")
def tombstoning(tmp_path_factory):
    server = start_prosody(tmp_path_factory.mktemp("prosody"), moderation_tombstones=True)
    yield server
    server.stop()


def retractions_of(store, room: str, stanza_id: str) -> list[ev.MessageRetracted]:
    return [e for e in room_events(store, room) if isinstance(e, ev.MessageRetracted) and e.target_id == stanza_id]


def test_a_message_moderated_while_away_is_removed_by_the_moderator_in_every_view(tombstoning, tmp_path):
    room = unique_room(tombstoning, "tomb")
    store_url = f"sqlite:///{tmp_path}/events.sqlite"
    with XmppUsers("127.0.0.1", tombstoning.port) as pool, open_event_store(store_url) as store:
        alice, bob, carol = (pool.connect(f"{name}@localhost", PASSWORD) for name in ("alice", "bob", "carol"))
        alice.create_room(room, "alice")
        bob.join(room, "bob")
        carol.join(room, "carol")
        with running_listener(tombstoning, store, include=(room,)) as listener:
            wait_joined(listener, room)
            seen = bob.say(room, "seen live, then moderated")
            alice.moderate(room, seen["stanza_id"], "spam")
            wait_for(lambda: retractions_of(store, room, seen["stanza_id"]), message="the live moderation stored")
            assert listener.listener.wait_idle()
        before = utcnow().replace(microsecond=0)
        rude = bob.say(room, "rude words")
        alice.moderate(room, rude["stanza_id"], "off topic")
        after = utcnow()
        traffic = Traffic([carol], [room], prefix="live").start()  # the rejoin races live messages
        try:
            traffic.sent_at_least(3)
            with running_listener(tombstoning, store, include=(room,)) as listener:
                wait_joined(listener, room, timeout=20)
                traffic.sent_at_least(5)
                traffic.stop()
                wait_for(lambda: set(traffic.sent[room]) <= set(archived_stanza_ids(store, room)), 20,
                         message="the live messages archived")
                wait_for(lambda: any(isinstance(e, ev.ArchiveGap) for e in room_events(store, room)), 20,
                         message="the catch-up's gap record")
                assert listener.listener.wait_idle()
        finally:
            traffic.stop()

        events = room_events(store, room)
        [post] = [e for e in events if isinstance(e, ev.MessagePosted) and e.stanza_id == rude["stanza_id"]]
        assert (post.nick, post.body, post.body_kept, post.capture) == ("bob", "", False, ev.Capture.BACKFILL)
        removals = retractions_of(store, room, rude["stanza_id"])
        assert [(r.by_nick, r.reason, r.moderated) for r in removals][:1] == [("alice", "off topic", True)]
        assert before <= removals[0].occurred_at <= after
        # Seen live: its text kept, one moderation (the live one), whatever the catch-up read of its tombstone.
        [kept] = [e for e in events if isinstance(e, ev.MessagePosted) and e.stanza_id == seen["stanza_id"]]
        assert (kept.body, kept.body_kept, kept.capture) == ("seen live, then moderated", True, ev.Capture.LIVE)
        assert [r.capture for r in retractions_of(store, room, seen["stanza_id"])] == [ev.Capture.LIVE]
        stanza_ids = archived_stanza_ids(store, room)
        assert len(stanza_ids) == len(set(stanza_ids)), "a message archived twice"
        [gap] = [e for e in events if isinstance(e, ev.ArchiveGap)]
        assert gap.verified, gap.explanation

        wait_for(lambda: utcnow() - after > SETTLE, message="the messages to settle")
        [report] = verify(listener_settings(tombstoning), store, [room])
        assert (report.tombstones, report.missing, report.server) == (2, 0, report.archived), report
        assert f"{room}: server {report.server} (2 tombstones), archived {report.server}, missing 0" in describe_room(report)[0]

    world = World(store_url, tmp_path)
    try:
        world.feed([])
        assert_removed_by_the_moderator(world, room, rude["stanza_id"], before, after)
    finally:
        world.close()


def assert_removed_by_the_moderator(world: World, room: str, stanza_id: str, before, after) -> None:
    for compliance in (False, True):
        token = world.token(room, compliance)
        lines = world._get(f"/api/v1/rooms/{room}/transcript?limit=1000", token).get_json()["lines"]
        [line] = [line for line in lines if line.get("stanza_id") == stanza_id]
        assert line.get("body") is None and line["nick"] == "bob", line
        removed = line["removed"]
        assert (removed["by_nick"], removed["moderated"], removed.get("reason")) == ("alice", True, "off topic")
        assert before.isoformat()[:19] <= removed["at"][:19] <= after.isoformat()[:19], removed
        text = world._get(f"/api/v1/rooms/{room}/transcript?limit=1000&format=text", token).get_data(as_text=True)
        assert "* a message by bob was removed by alice (backfilled from the room's archive)" in text, text
        assert "rude words" not in text
    hits = world._get(f"/api/v1/search?q=room:{room}%20is:retracted&limit=50", world.compliance).get_json()["hits"]
    assert [(h["nick"], h["body"], h.get("retracted")) for h in hits if h["position"] == line["id"]] == [("bob", "", True)]
    exported = world._get(f"/api/v1/export?q=room:{room}&format=jsonl", world.compliance).get_data(as_text=True)
    records = [json.loads(row)["event"] for row in exported.splitlines()[:-1]]
    mine = [r for r in records if r.get("stanza_id") == stanza_id or r.get("target_id") == stanza_id]
    assert mine[0]["type"] == "message_posted" and mine[0]["body_kept"] is False and mine[0]["body"] == ""
    assert (mine[1]["type"], mine[1]["by_nick"], mine[1]["reason"]) == ("message_retracted", "alice", "off topic")
