"""The widget's XMPP sessions against a real Prosody: join, see, say, refusals, idle end, quiet logs."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from query_api.web import WebState
from query_api.web.auth import WebSessions
from query_api.web.widget import Tickets
from query_api.web.xmpp_session import JoinError, NoSuchSession, ServerAddress, XmppSessions
from tests.services.prosody import PASSWORD

SECRET_PASSWORD = "Never-Logged-5c2e"


@pytest.fixture
def room(prosody, xmpp_users):
    name = f"ws-{uuid.uuid4().hex[:8]}@{prosody.muc_service}"
    alice = xmpp_users.connect("alice@localhost", PASSWORD)
    alice.create_room(name, "alice")
    return name, alice


@pytest.fixture
def sessions(prosody):
    manager = XmppSessions(ServerAddress("127.0.0.1", prosody.port, tls=False), join_timeout=5)
    yield manager
    manager.close()


def wait_for_item(sessions, session, room, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [i for i in sessions.items(session.id, room) if predicate(i)]
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"nothing matching seen in {sessions.items(session.id, room)}")


def test_a_session_joins_sees_the_room_and_speaks_there(prosody, room, sessions, caplog):
    name, alice = room
    prosody.register("sam", SECRET_PASSWORD)
    with caplog.at_level(logging.DEBUG):
        sam = sessions.join("sam@localhost", SECRET_PASSWORD, name, "Sam")
    assert wait_for_item(sessions, sam, name, lambda i: i["kind"] == "joined" and i["nick"] == "alice")
    alice.say(name, "hi <Sam>")
    assert wait_for_item(sessions, sam, name, lambda i: i.get("body") == "hi <Sam>")["nick"] == "alice"
    sessions.say(sam.id, name, "hello alice")
    assert wait_for_item(sessions, sam, name, lambda i: i.get("body") == "hello alice")["nick"] == "Sam"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SEND:" in logged  # slixmpp did log the stream at debug level...
    assert SECRET_PASSWORD not in logged and "xmpp-sasl" not in logged  # ...but not the authentication
    with pytest.raises(NoSuchSession):
        sessions.items(sam.id, "elsewhere@conference.localhost")


def test_refusals_say_why(room, sessions):
    name, _ = room
    with pytest.raises(JoinError, match="refused this JID and password"):
        sessions.join("bob@localhost", "wrong", name, "bob")
    with pytest.raises(JoinError, match="nickname is in use"):
        sessions.join("bob@localhost", PASSWORD, name, "alice")
    with pytest.raises(JoinError, match="is not a JID|are needed"):
        sessions.join("no-at-sign", PASSWORD, name, "x")
    assert sessions.count() == 0
    sessions.max_sessions = 1
    sessions.join("bob@localhost", PASSWORD, name, "bob")
    with pytest.raises(JoinError, match="too many"):
        sessions.join("carol@localhost", PASSWORD, name, "carol")


def test_a_session_nobody_polls_leaves_the_room(prosody, room, sessions):
    name, _ = room
    carol = sessions.join("carol@localhost", PASSWORD, name, "carol")
    idle = XmppSessions(ServerAddress("127.0.0.1", prosody.port, tls=False), idle_timeout=1.0, join_timeout=5)
    try:
        dave = idle.join("dave@localhost", PASSWORD, name, "dave")
        wait_for_item(sessions, carol, name, lambda i: i["kind"] == "joined" and i["nick"] == "dave")
        wait_for_item(sessions, carol, name, lambda i: i["kind"] == "left" and i["nick"] == "dave", timeout=10)
        with pytest.raises(NoSuchSession):
            idle.items(dave.id, name)
        assert idle.count() == 0
    finally:
        idle.close()
    sessions.leave(carol.id, name)
    assert sessions.count() == 0


def test_every_session_leaves_when_the_server_stops(prosody, room, sessions):
    name, _ = room
    stopping = threading.Event()
    state = WebState(WebSessions(), Tickets(), ServerAddress("127.0.0.1", prosody.port, tls=False), stopping)
    state.xmpp.join("carol@localhost", PASSWORD, name, "carol")
    watcher = sessions.join("dave@localhost", PASSWORD, name, "dave")
    stopping.set()
    wait_for_item(sessions, watcher, name, lambda i: i["kind"] == "left" and i["nick"] == "carol")
