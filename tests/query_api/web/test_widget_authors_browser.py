"""The widget in a room that gives no occupant-ids (Prosody's ``muc_occupant_id = false``) and shows its user
no real JIDs, while the archive's listener (an owner) sees them: a correction heard live is applied where the
archive applies it, by the author key the feed sent for the sender's nick (messages.js ``Book.know``), one of
the occupant's stay: within a stay, as the archive; across two, not (the key would link them for any visitor),
and the widget shows the archive's verdict again after Leave."""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from ..conftest import archive_url
from .test_widget_browser import (OTHER_PASSWORD, OTHER_USER, _world, activity, join_as_wanda, leave_and_see, left,
                                  message_lines, widget_prosody)


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


def test_a_newcomer_in_the_author_s_freed_nick_does_not_correct_her_message_nor_live_the_author_back_in_a_new_stay(
        browser, world):
    """The reviewers' cases: alice says something and leaves, mallory joins as alice, alice comes back as alicia
    (another stay), says something more and is renamed ally. Live, mallory's correction of alice's first message
    is a line of its own and her retraction of it changes nothing (the keys of her stay and of alice's first
    differ); ally's correction of her second message applies (one stay, across the rename); her correction of
    her first is a line of its own too: the widget's key of her is her stay's, and the room does not tell it
    that alicia is alice back. After Leave, the archive's feed shows its verdict (comparing real JIDs): that
    correction applied. (The archive used to judge the retraction by nick, and the feed's key was her JID's,
    the same in both stays: any visitor could tell alicia was alice.)"""
    room, alice = world["room"], world["alice"]
    mallory = world["users"].connect(f"{OTHER_USER}@localhost", OTHER_PASSWORD)
    tag = uuid.uuid4().hex[:6]
    first = alice.say(room, f"teh first {tag}")
    alice.leave(room)
    mallory.join(room, "alice")
    alice.join(room, "alicia")
    second = alice.say(room, f"teh second {tag}")
    alice.change_nick(room, "ally")
    join_as_wanda(browser, world, shown="is now known as ally")
    try:
        mallory.correct(room, first["id"], f"not hers {tag}")
        mallory.retract(room, first["stanza_id"])
        alice.correct(room, second["id"], f"the second {tag}")
        alice.correct(room, first["id"], f"the first {tag}")
        alice.say(room, f"done {tag}")
        WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"done {tag}" in activity(b))
        assert message_lines(browser, 5) == [
            ("alice", f"teh first {tag}"),
            ("alicia", f"the second {tag} (edited)"),
            ("alice", f"not hers {tag} (edited)"),
            ("ally", f"the first {tag} (edited)"),
            ("ally", f"done {tag}"),
        ]
        leave_and_see(browser, f"done {tag}", [
            ("alice", f"the first {tag} (edited)"),
            ("alicia", f"the second {tag} (edited)"),
            ("alice", f"not hers {tag} (edited)"),
            ("ally", f"done {tag}"),
        ])
    finally:
        left(browser)
        mallory.leave(room)
