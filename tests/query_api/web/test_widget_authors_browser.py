"""The widget in a room that gives no occupant-ids (Prosody's ``muc_occupant_id = false``) and shows its user
no real JIDs, while the archive's listener (an owner) sees them: a correction heard live is applied where the
archive applies it, by the author key the feed sent for the sender's nick (messages.js ``Book.know``)."""

from __future__ import annotations

import uuid

import pytest


from ..conftest import archive_url
from .test_widget_browser import (OTHER_PASSWORD, OTHER_USER, _world, join_as_wanda, left, seen_live_then_in_the_feed,
                                  widget_prosody)


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    server = widget_prosody(tmp_path_factory, "prosody-no-ids", muc_options={"muc_occupant_id": "false"})
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, prosody, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"web-widget-no-ids-{request.param}")
    with archive_url(request.param, directory) as store_url:
        yield from _world(prosody, directory, store_url)


def test_a_newcomer_in_the_author_s_freed_nick_does_not_correct_her_message_the_author_renamed_does(browser, world):
    """The reviewer's case: alice says something and leaves, mallory joins as alice, alice comes back as
    alicia; then, live, mallory's correction of alice's message is a line of its own, her retraction of it
    changes nothing, and alicia's correction applies, as the archive (comparing real JIDs) shows them after
    Leave. (The archive used to judge the retraction by nick: the feed showed alice's message removed.)"""
    room, alice = world["room"], world["alice"]
    mallory = world["users"].connect(f"{OTHER_USER}@localhost", OTHER_PASSWORD)
    tag = uuid.uuid4().hex[:6]
    first = alice.say(room, f"teh first {tag}")
    alice.leave(room)
    mallory.join(room, "alice")
    alice.join(room, "alicia")
    join_as_wanda(browser, world, shown="alicia joined")
    try:
        mallory.correct(room, first["id"], f"not hers {tag}")
        mallory.retract(room, first["stanza_id"])
        alice.correct(room, first["id"], f"the first {tag}")
        alice.say(room, f"done {tag}")
        expected = [
            ("alice", f"the first {tag} (edited)"),
            ("alice", f"not hers {tag} (edited)"),
            ("alicia", f"done {tag}"),
        ]
        seen_live_then_in_the_feed(browser, f"done {tag}", expected)
    finally:
        left(browser)
        mallory.leave(room)
