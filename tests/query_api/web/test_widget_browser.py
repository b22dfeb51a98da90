"""The embeddable widget in headless Chromium, framed by another site, against a real server process
whose listener archives a real Prosody room: live activity, and joining from the widget."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from selenium.webdriver.common.by import By
from slixmpp.exceptions import IqError
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from archive import events as ev
from archive.application import open_event_store
from chat_archive.xmpp_users import XmppUsers
from query_api.roles import Role
from query_api.tokens import open_token_store
from chat_archive.prosody import ProsodyServer
from tests.services.prosody import LISTENER, PASSWORD

from tests.services.http_site import HttpSite

from ..conftest import archive_url
from .server import ServerProcess, keep, listener_config

WIDGET_USER, WIDGET_PASSWORD = "wanda", "Widget-S3cret-7e1f"  # passed by the embedding site
TYPING_USER, TYPING_PASSWORD = "tom", "Typed-S3cret-91ab"  # typed into the widget
OTHER_USER, OTHER_PASSWORD = "mallory", "0ther-S3cret-5d2c"  # another occupant, not the author


class EmbeddingSite:
    """Another origin whose page frames the widget, as the collaboration site does."""

    def __init__(self):
        self.page = ""
        self._site = HttpSite(lambda path, headers: (200, "text/html; charset=utf-8", self.page.encode()))
        self.origin = self._site.origin

    def embed(self, widget_url: str) -> str:
        self.page = f'<!doctype html><h1>Collab site</h1><iframe id="w" src="{widget_url}" width="420" height="480"></iframe>'
        return self.origin + "/?" + uuid.uuid4().hex

    def close(self):
        self._site.close()


def room_of_alice(users: XmppUsers, prosody, prefix: str) -> tuple[str, object, list[str]]:
    """A new room alice owns and sits in, and the list of "nick: body" lines she hears there."""
    room = f"{prefix}-{uuid.uuid4().hex[:8]}@{prosody.muc_service}"
    alice = users.connect("alice@localhost", PASSWORD)
    alice.create_room(room, "alice")
    heard: list[str] = []
    alice.client.add_event_handler("groupchat_message", lambda msg: heard.append(f"{msg['from'].resource}: {msg['body']}"))
    return room, alice, heard


def widget_prosody(tmp_path_factory, name: str, **options) -> ProsodyServer:
    """A Prosody of the widget tests' own (``options``: ``ProsodyServer``'s), started, with the listener and alice."""
    server = ProsodyServer(tmp_path_factory.mktemp(name), admins=(f"{LISTENER}@localhost",), **options)
    for user in (LISTENER, "alice"):
        server.register(user, PASSWORD)
    server.start()
    return server


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    """This module's Prosody offers no PLAIN sign-in: the widget's script must do SCRAM itself."""
    server = widget_prosody(tmp_path_factory, "prosody-scram", plain_auth=False)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, prosody, tmp_path_factory):
    """A room on Prosody with alice in it, archived by the listener of a real server process."""
    directory = tmp_path_factory.mktemp(f"web-widget-{request.param}")
    with archive_url(request.param, directory) as store_url:
        yield from _world(prosody, directory, store_url)


def _world(prosody, directory, store_url: str):
    prosody.register(WIDGET_USER, WIDGET_PASSWORD)
    prosody.register(TYPING_USER, TYPING_PASSWORD)
    prosody.register(OTHER_USER, OTHER_PASSWORD)
    users = XmppUsers("127.0.0.1", prosody.port)
    room, alice, heard = room_of_alice(users, prosody, "widget")

    tokens = open_token_store(store_url)
    site_token = tokens.create(Role.SITE, (room,), label="collab site")[0]
    tokens.close()
    embedding = EmbeddingSite()
    server = ServerProcess(
        directory,
        {
            "xmpp": listener_config(prosody, plain_rooms=True),
            "store": {"url": store_url},
            "index": {"path": str(directory / "index"), "commit_interval": 0.1},
            "projections": {"commit_interval": 0.2},
            "api": {"widget_frame_ancestors": ["'self'", embedding.origin], "widget_websocket_url": prosody.websocket_url},
        },
    )  # fmt: skip
    try:
        base = server.start()
        wait_until(lambda: _archived(store_url, room, ev.OccupantJoined, "alice"), "the listener to archive the room")
        yield {
            "room": room, "base": base, "token": site_token, "alice": alice, "heard": heard, "store_url": store_url,
            "embedding": embedding, "server": server, "users": users,
        }  # fmt: skip
    finally:
        server.stop()
        embedding.close()
        users.close()


def wait_until(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def _archived(store_url: str, room: str, kind: type, text: str) -> bool:
    with open_event_store(store_url) as store:
        for record in store.read_room(room):
            event = record.event
            if isinstance(event, kind) and text in (getattr(event, "body", None) or getattr(event, "nick", "")):
                return True
    return False


def ticket(world, **credentials) -> str:
    """What the embedding site's server does: ask for a widget URL for its user (and their account)."""
    request = urllib.request.Request(
        world["base"] + "/widget/tickets",
        data=json.dumps({"room": world["room"], **credentials}).encode(),
        headers={
            "Authorization": f"Bearer {world['token']}",
            "X-Chat-Archive-User": "sam",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["url"]


def transcript_text(world, missing: str | None = None) -> str:
    """The room's transcript as the embedding site reads it from the API (text format); ``missing`` (if given)
    while the views know no such room yet."""
    request = urllib.request.Request(
        world["base"] + "/api/v1/rooms/" + world["room"] + "/transcript?format=text",
        headers={"Authorization": f"Bearer {world['token']}", "X-Chat-Archive-User": "sam"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()
    except urllib.error.HTTPError as e:
        if e.code == 404 and missing is not None:
            return missing
        raise


def open_widget(browser, world, **credentials):
    browser.get(world["embedding"].embed(ticket(world, **credentials)))
    browser.switch_to.frame(browser.find_element(By.ID, "w"))
    WebDriverWait(browser, 10).until(EC.text_to_be_present_in_element((By.ID, "status"), "Live"))


def activity(browser) -> str:
    return browser.find_element(By.ID, "activity").text


def test_the_widget_shows_what_another_client_says_live_without_joining(browser, world):
    open_widget(browser, world)
    body = f"live from alice {uuid.uuid4().hex[:6]} <i>not markup</i>"
    world["alice"].say(world["room"], body)
    # Live: shown on the open page, never reloaded (how soon is bench/freshness.py's to measure).
    WebDriverWait(browser, 60, poll_frequency=0.1).until(lambda b: body in activity(b))
    assert "alice joined" in activity(browser)  # joins are part of the activity
    browser.switch_to.default_content()
    with open_event_store(world["store_url"]) as store:  # the viewer never joined the room
        joined = {r.event.nick for r in store.read_room(world["room"]) if isinstance(r.event, ev.OccupantJoined)}
    assert joined <= {"alice", "archive"}


def test_a_correction_and_a_retraction_of_the_correction_change_the_line_in_place(browser, world):
    """The listener's own sequence (issue 12): post, correct, retract by the correction's stanza-id.
    The widget shows one line, corrected, then a tombstone, as the transcript does."""
    open_widget(browser, world)
    tag = uuid.uuid4().hex[:6]
    first = world["alice"].say(world["room"], f"helo {tag}")
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"helo {tag}" in activity(b))
    fixed = world["alice"].correct(world["room"], first["id"], f"hello {tag}")
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"hello {tag}" in activity(b))
    assert activity(browser).count(tag) == 1 and f"hello {tag} (edited)" in activity(browser)
    removed_before = activity(browser).count("message removed")
    world["alice"].retract(world["room"], fixed["stanza_id"])
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: tag not in activity(b))
    assert activity(browser).count("message removed") == removed_before + 1


def message_lines(browser, count: int) -> list[tuple[str, str]]:
    """The widget's last ``count`` message lines: (nick, text as shown, with " (edited)" if marked)."""
    return [tuple(line) for line in browser.execute_script(
        "return Array.from(document.querySelectorAll('#activity li.message')).slice(-arguments[0]).map(li => ["
        "  li.querySelector('.nick').textContent,"
        "  li.querySelector('.body, .tombstone').textContent + (li.querySelector('.edited') || {textContent: ''}).textContent])",
        count,
    )]


def test_after_join_corrections_and_retractions_show_as_the_archive_feed_shows_them(browser, world):
    """One truth before and after Join: what the room sends live changes the lines as the archive's feed does.
    The author's corrections replace the text of the line they name, from the feed or heard live (marked
    edited); a retraction (by the correction's stanza-id too) or a moderation shows the line removed;
    somebody else's correction is a line of its own and their retraction changes nothing."""
    room, alice = world["room"], world["alice"]
    mallory = world["users"].connect(f"{OTHER_USER}@localhost", OTHER_PASSWORD)
    mallory.join(room, OTHER_USER)
    tag = uuid.uuid4().hex[:6]
    open_widget(browser, world, jid=f"{WIDGET_USER}@localhost", password=WIDGET_PASSWORD, nick="Wanda")
    typo = alice.say(room, f"teh typo {tag}")
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"teh typo {tag}" in activity(b))  # the feed's
    browser.find_element(By.ID, "join-button").click()
    WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), "In the room as Wanda"))
    second = alice.say(room, f"second {tag}")
    doomed = alice.say(room, f"moderated {tag}")
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"moderated {tag}" in activity(b))  # heard live
    alice.correct(room, typo["id"], f"the typo {tag}")
    fixed = alice.correct(room, second["id"], f"second, fixed {tag}")
    mallory.correct(room, typo["id"], f"not yours {tag}")
    mallory.retract(room, typo["stanza_id"])
    alice.retract(room, fixed["stanza_id"])
    alice.moderate(room, doomed["stanza_id"])
    mallory.say(room, f"done {tag}")
    expected = [
        ("alice", f"the typo {tag} (edited)"),
        ("alice", "message removed (edited)"),  # as the archive's feed marks a corrected message it removed
        ("alice", "message removed"),
        (OTHER_USER, f"not yours {tag} (edited)"),
        (OTHER_USER, f"done {tag}"),
    ]
    try:
        WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"done {tag}" in activity(b))
        assert message_lines(browser, len(expected)) == expected  # live, after Join
        browser.find_element(By.ID, "leave").click()  # back to the archive's feed
        # The feed shows the lines in log order: with the last one, the changes before it.
        WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda b: f"done {tag}" in activity(b))
        assert message_lines(browser, len(expected)) == expected
    finally:
        browser.switch_to.default_content()
        mallory.leave(room)


def join_as_wanda(browser, world, shown: str = "") -> None:
    """Open the widget, wait until its feed shows ``shown``, and Join."""
    open_widget(browser, world, jid=f"{WIDGET_USER}@localhost", password=WIDGET_PASSWORD, nick="Wanda")
    WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda b: shown in activity(b))
    browser.find_element(By.ID, "join-button").click()
    WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), "In the room as Wanda"))


def leave_and_see(browser, last: str, expected: list[tuple[str, str]]) -> None:
    """Back to the archive's feed, which shows ``expected`` as the last message lines once it shows ``last``."""
    browser.find_element(By.ID, "leave").click()
    WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda b: last in activity(b))
    assert message_lines(browser, len(expected)) == expected


def seen_live_then_in_the_feed(browser, last: str, expected: list[tuple[str, str]]) -> None:
    """Joined, the widget shows ``expected`` as its last message lines once it shows ``last``; the archive's feed,
    after Leave, shows the same."""
    WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: last in activity(b))
    assert message_lines(browser, len(expected)) == expected
    leave_and_see(browser, last, expected)


def left(browser) -> None:
    """Out of the room (a test that failed joined may not have left) and out of the widget's frame."""
    if browser.find_element(By.ID, "leave").is_displayed():
        browser.find_element(By.ID, "leave").click()
    browser.switch_to.default_content()


def test_a_correction_and_a_retraction_heard_before_their_message_apply_when_it_comes(browser, world):
    """As the archive holds a correction or retraction naming a message it has not (yet): the message, when
    it comes, shows corrected or removed, and the correction is no line of its own."""
    room, alice = world["room"], world["alice"]
    tag = uuid.uuid4().hex[:6]
    join_as_wanda(browser, world)
    try:
        alice.correct(room, f"early-{tag}", f"fixed {tag}")
        alice.retract(room, f"doomed-{tag}")
        alice.say(room, f"fxed {tag}", message_id=f"early-{tag}")
        alice.say(room, f"doomed {tag}", message_id=f"doomed-{tag}")
        alice.say(room, f"done {tag}")
        expected = [("alice", f"fixed {tag} (edited)"), ("alice", "message removed"), ("alice", f"done {tag}")]
        seen_live_then_in_the_feed(browser, f"done {tag}", expected)
    finally:
        left(browser)


def test_a_correction_of_a_message_older_than_the_widget_s_lines_shows_nothing_new(browser, world):
    """The archive applies it to that message, which the widget does not show: not from its feed (as opening
    the widget anew would not), not heard live after Join, not from its feed after Leave."""
    room, alice = world["room"], world["alice"]
    tag = uuid.uuid4().hex[:6]
    old = alice.say(room, f"old {tag}")
    for n in range(50):  # the feed shows the last 50 lines
        alice.say(room, f"filler {n} {tag}")
    wait_until(lambda: f"filler 49 {tag}" in transcript_text(world), "the transcript view")  # before the feed opens
    open_widget(browser, world, jid=f"{WIDGET_USER}@localhost", password=WIDGET_PASSWORD, nick="Wanda")
    try:
        WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda b: f"filler 49 {tag}" in activity(b))
        assert f"old {tag}" not in activity(browser)
        alice.correct(room, old["id"], f"older, fixed {tag}")  # the feed sends the corrected line
        alice.say(room, f"polled {tag}")
        WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda b: f"polled {tag}" in activity(b))
        assert f"fixed {tag}" not in activity(browser)
        browser.find_element(By.ID, "join-button").click()
        WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), "In the room as Wanda"))
        alice.correct(room, old["id"], f"older, fixed again {tag}")
        alice.say(room, f"done {tag}")
        expected = [("alice", f"polled {tag}"), ("alice", f"done {tag}")]
        seen_live_then_in_the_feed(browser, f"done {tag}", expected)
        assert f"fixed {tag}" not in activity(browser) and f"fixed again {tag}" not in activity(browser)
    finally:
        left(browser)


def test_what_is_said_between_the_last_poll_and_join_shows_once(browser, world):
    """The feed's last poll, then a message, then Join while the room is busy: every message shows, once,
    in the order said (the widget asks the room for what came after its newest line)."""
    room, alice = world["room"], world["alice"]
    tag = uuid.uuid4().hex[:6]
    alice.say(room, f"polled {tag}")
    open_widget(browser, world, jid=f"{WIDGET_USER}@localhost", password=WIDGET_PASSWORD, nick="Wanda")
    WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda b: f"polled {tag}" in activity(b))
    # The archive's feed answers no more (a slow archive): what follows reaches the widget only through Join.
    browser.execute_script("window.fetch = function () { return new Promise(function () {}); }")
    # And the request for the room's archive goes out late (a slow link): the room says more in between,
    # which comes both live and from the archive.
    browser.execute_script("""
      var send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        var socket = this;
        if (String(data).indexOf("urn:xmpp:mam:2") < 0) { send.call(socket, data); return; }
        setTimeout(function () { send.call(socket, data); }, 500);
      };""")
    said = [f"polled {tag}", f"unpolled {tag}"]
    alice.say(room, said[-1])
    busy = threading.Event()

    def chatter():
        while not busy.is_set() and len(said) < 200:
            said.append(f"during {len(said)} {tag}")
            alice.say(room, said[-1])
            time.sleep(0.01)

    talker = threading.Thread(target=chatter)
    talker.start()
    try:
        time.sleep(0.1)
        browser.find_element(By.ID, "join-button").click()
        WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), "In the room as Wanda"))
        time.sleep(1)
    finally:
        busy.set()
        talker.join()
    try:
        said.append(f"done {tag}")
        alice.say(room, said[-1])
        WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"done {tag}" in activity(b))
        shown = [body for _, body in message_lines(browser, 400) if body.endswith(tag)]
        assert len(said) > 4 and shown == said
    finally:
        left(browser)


def test_a_correction_across_a_nick_change_by_the_same_occupant_applies(browser, world):
    """The room shows nobody's real JID to the widget's user: only the occupant-id (XEP-0421: Debian's Prosody
    0.12 gives them, muc/occupant_id.lib.lua, unless `muc_occupant_id = false`) tells that alicia is alice
    renamed (her corrections apply, to a line from the feed and to one heard live) and that the newcomer
    who took the nick alice is somebody else (a line of its own), as the archive tells them apart."""
    room, alice = world["room"], world["alice"]
    mallory = world["users"].connect(f"{OTHER_USER}@localhost", OTHER_PASSWORD)
    tag = uuid.uuid4().hex[:6]
    first = alice.say(room, f"teh first {tag}")
    join_as_wanda(browser, world, shown=f"teh first {tag}")
    try:
        second = alice.say(room, f"teh second {tag}")
        WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"teh second {tag}" in activity(b))
        alice.change_nick(room, "alicia")
        alice.correct(room, first["id"], f"the first {tag}")
        alice.correct(room, second["id"], f"the second {tag}")
        mallory.join(room, "alice")
        mallory.correct(room, first["id"], f"not hers {tag}")
        alice.say(room, f"done {tag}")
        expected = [
            ("alice", f"the first {tag} (edited)"),
            ("alice", f"the second {tag} (edited)"),
            ("alice", f"not hers {tag} (edited)"),
            ("alicia", f"done {tag}"),
        ]
        seen_live_then_in_the_feed(browser, f"done {tag}", expected)
    finally:
        left(browser)
        mallory.leave(room)
        alice.change_nick(room, "alice")
    with open_event_store(world["store_url"]) as store:  # the listener kept the occupant-ids
        said = [r.event for r in store.read_room(room) if isinstance(r.event, (ev.MessagePosted, ev.MessageCorrected))
                and tag in r.event.body]
    by_alice = {e.occupant_id for e in said if "not hers" not in e.body}
    assert len(by_alice) == 1 and None not in by_alice
    by_mallory = {e.occupant_id for e in said if "not hers" in e.body}
    assert len(by_mallory) == 1 and None not in by_mallory and by_mallory != by_alice


def test_in_a_room_without_archive_what_is_said_between_the_last_poll_and_join_shows_once(browser, world, prosody):
    """A room that keeps no archive (no XEP-0313) is asked for its history since the newest line shown."""
    alice = world["alice"]
    room = f"plain-{uuid.uuid4().hex[:8]}@{prosody.plain_muc_service}"
    alice.create_room(room, "alice")
    tokens = open_token_store(world["store_url"])
    plain = {**world, "room": room, "token": tokens.create(Role.SITE, (room,), label="plain room")[0]}
    tokens.close()
    tag = uuid.uuid4().hex[:6]
    alice.say(room, f"polled {tag}")
    wait_until(lambda: _archived(world["store_url"], room, ev.MessagePosted, f"polled {tag}"), "the listener")
    wait_until(lambda: f"polled {tag}" in transcript_text(plain, missing=""), "the transcript view")
    open_widget(browser, plain, jid=f"{WIDGET_USER}@localhost", password=WIDGET_PASSWORD, nick="Wanda")
    try:
        WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda b: f"polled {tag}" in activity(b))
        browser.execute_script("window.fetch = function () { return new Promise(function () {}); }")  # as above
        alice.say(room, f"unpolled {tag}")
        browser.find_element(By.ID, "join-button").click()
        WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), "In the room as Wanda"))
        alice.say(room, f"done {tag}")
        WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda b: f"done {tag}" in activity(b))
        shown = [body for _, body in message_lines(browser, 50) if body.endswith(tag)]
        assert shown == [f"polled {tag}", f"unpolled {tag}", f"done {tag}"]
    finally:
        left(browser)
        alice.leave(room)


def join_and_say(browser, world, nick: str, password: str, screenshot=None) -> None:
    WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), f"In the room as {nick}"))
    tag = uuid.uuid4().hex[:6]
    # Characters XML may not carry would make the server close the stream (and lose what follows):
    # they are dropped before sending.
    browser.execute_script("document.getElementById('message').value = arguments[0]", f"bell\x07 and\x01 esc\x1b {tag}")
    browser.find_element(By.ID, "send").click()
    wait_until(lambda: f"{nick}: bell and esc {tag}" in world["heard"], "alice to receive the message, stripped")
    body = f"hello from the widget, {nick} {tag}"
    browser.find_element(By.ID, "message").send_keys(body)
    browser.find_element(By.ID, "send").click()
    wait_until(lambda: f"{nick}: {body}" in world["heard"], "alice to receive the widget's message")
    WebDriverWait(browser, 10).until(lambda b: body in activity(b))  # the room echoes it into the widget
    assert ping_refusal(world, nick) == "service-unavailable"  # the widget's client answers what it is asked
    if screenshot:
        browser.switch_to.default_content()
        screenshot(browser.find_element(By.ID, "w"))
        browser.switch_to.frame(browser.find_element(By.ID, "w"))
    wait_until(lambda: _archived(world["store_url"], world["room"], ev.MessagePosted, body), "the archive")
    wait_until(lambda: body in transcript_text(world), "the room's transcript to show the message")
    browser.find_element(By.ID, "leave").click()
    WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "join-button")))
    browser.switch_to.default_content()
    # The password went nowhere: not into the archive, not into the server's log (it never reached it).
    with open_event_store(world["store_url"]) as store:
        assert all(password not in repr(r.event) for r in store.read_log())
    assert password not in world["server"].log()


def ping_refusal(world, nick: str) -> str:
    """What the widget's client answers to an XMPP ping alice sends it through the room (an error condition)."""
    alice = world["alice"]

    async def ping():
        try:
            await alice.client.plugin["xep_0199"].send_ping(f"{world['room']}/{nick}", timeout=10)
        except IqError as e:
            return e.condition
        return "answered"

    return alice.pool.run(ping())


def test_joining_with_credentials_the_embedding_site_passed(browser, world, screenshot_dir):
    open_widget(browser, world, jid=f"{WIDGET_USER}@localhost", password=WIDGET_PASSWORD, nick="Wanda")
    browser.find_element(By.ID, "join-button").click()
    join_and_say(browser, world, "Wanda", WIDGET_PASSWORD, lambda frame: keep(frame, screenshot_dir, "widget.png"))


def test_joining_with_credentials_typed_into_the_widget(browser, world):
    open_widget(browser, world)
    browser.find_element(By.ID, "join-button").click()
    WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "credentials")))
    browser.find_element(By.ID, "jid").send_keys(f"{TYPING_USER}@localhost")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.ID, "join-submit").click()
    error = WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "error")))
    assert "refused" in error.text
    browser.find_element(By.ID, "password").clear()
    browser.find_element(By.ID, "password").send_keys(TYPING_PASSWORD)
    browser.find_element(By.ID, "join-submit").click()
    join_and_say(browser, world, TYPING_USER, TYPING_PASSWORD)


def test_the_room_link_for_an_xmpp_client_and_tickets_only_for_permitted_rooms(browser, world):
    open_widget(browser, world)
    link = browser.find_element(By.CSS_SELECTOR, "a.xmpp-link").get_attribute("href")
    assert link == f"xmpp:{world['room']}?join"
    browser.switch_to.default_content()
    other = world["room"].replace("widget-", "other-")
    with pytest.raises(urllib.error.HTTPError) as refused:
        ticket({**world, "room": other})
    assert refused.value.code == 404


def test_only_the_configured_sites_may_frame_the_widget(browser, world):
    stranger = EmbeddingSite()  # an origin not in [api] widget_frame_ancestors
    try:
        browser.get(stranger.embed(ticket(world)))
        browser.switch_to.frame(browser.find_element(By.ID, "w"))
        loaded = WebDriverWait(browser, 10).until(
            lambda b: (url := b.execute_script("return document.URL")) != "about:blank" and url
        )
        assert "/widget/" not in loaded and not browser.find_elements(By.ID, "widget")  # Chromium refused it
    finally:
        browser.switch_to.default_content()
        stranger.close()
