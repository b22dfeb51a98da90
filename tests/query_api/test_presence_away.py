"""Presence in a room the listener is not watching (kicked and refused, lost with its connection, being caught up)
is known no later than when its watching stopped, whatever the listener's heartbeat says of the rooms it watches.

A real listener against Prosody writes its status, in its file and in the store; the API reads it as it does beside
`chat-archive listen` or on another host (``chat_archive.bootstrap.open_views``)."""

from __future__ import annotations

from datetime import timedelta

from archive.application import open_event_store
from archive.settings import StoreSettings
from archive.times import format_time, parse_time
from chat_archive.bootstrap import open_views
from chat_archive.config import Config
from ingest.settings import XmppSettings
from ingest.status import read_status
from projections.follower import LogFollower
from projections.presence.logic import room_known_until, unknown_why
from projections.search import IndexLocation, SearchIndex, SearchIndexProjection
from query_api import create_app
from query_api.access import AllRooms, Caller
from query_api.roles import Role
from query_api.tokens import open_token_store
from query_api.web.room_presence import day_presence
from tests.factories import at
from ingest.xmlutil import MAM, q
from tests.ingest.helpers import running_listener, wait_for_event, wait_joined
from tests.query_api.conftest import auth
from tests.services.prosody import unique_room, wait_for
from tests.services.tcp_proxy import TcpProxy

T = at(0).replace(hour=9)


def test_a_room_is_known_no_later_than_when_its_watching_stopped():
    assert room_known_until(T, None) == T, "a room watched: the archive's last known moment"
    assert room_known_until(T, T - timedelta(hours=1)) == T - timedelta(hours=1), "away since: no later"
    assert room_known_until(T - timedelta(hours=2), T - timedelta(hours=1)) == T - timedelta(hours=2)
    assert room_known_until(None, T) == T, "an archive with nothing stored knows nothing of the room after it either"
    assert room_known_until(None, None) is None


def test_presence_after_the_watching_stopped_says_why():
    away = T - timedelta(hours=1)
    why = unknown_why(T - timedelta(minutes=1), [], room_known_until(T, away), away)
    assert why == f"the listener is not watching this room since {format_time(away)}", why
    assert unknown_why(away, [], away, away) is None, "known up to the moment itself"
    assert "last known moment" in unknown_why(T + timedelta(minutes=1), [], T, None)


class Api:
    """The API over a store, reading the listener's status as `serve` does (its file: beside `chat-archive listen`,
    or on another host, where there is none)."""

    def __init__(self, store, store_url: str, status_file, base):
        config = Config(store=StoreSettings(url=store_url), xmpp=XmppSettings(status_file=str(status_file)))
        self.store, self.views = store, open_views(config, store)
        location = IndexLocation(base / "index")
        SearchIndexProjection(location).close()
        self.tokens = open_token_store(store_url, cache_seconds=0)
        search = SearchIndex(location, reload_interval=0)
        self.app = app = create_app(config, store=store, views=self.views, search=search, tokens=self.tokens)
        self.client, self.compliance = app.test_client(), auth(self.tokens.create(Role.COMPLIANCE)[0])

    def get(self, url: str) -> dict:
        for projection in self.views.projections():
            LogFollower(self.store, projection, commit_interval=60).catch_up()
        return self.client.get(f"/api/v1{url}", headers=self.compliance).json

    def close(self) -> None:
        self.tokens.close()
        self.views.close()


def beat_after(status_file, moment):
    """The listener's heartbeat, once it is a second past ``moment``."""
    return wait_for(lambda: (s := read_status(status_file)) and s.connected and s.stored_until
                    and s.stored_until > moment + timedelta(seconds=1) and s.stored_until,
                    message="the heartbeat to move on")


def assert_not_known_since(api: Api, room: str, away, beat) -> None:
    """Presence in ``room`` is not known after ``away``, though the heartbeat (``beat``) has moved on."""
    moment = format_time(beat - timedelta(seconds=0.5))  # watched rooms are known then; this one is not
    there = api.get(f"/rooms/{room}/presence?at={moment}")
    assert there["known"] is False, there
    assert parse_time(there["known_until"]) <= away, there
    assert there["unknown_why"] == f"the listener is not watching this room since {format_time(away)}", there
    state = api.get(f"/rooms/{room}/state")
    assert parse_time(state["at"]) <= away, "the room 'now' is the room as last known"
    later = api.get(f"/rooms/{room}/state?at={moment}")
    assert later["presence_known"] is False and later["unknown_why"] == there["unknown_why"], "/state says why too"
    listed = next(r for r in api.get("/rooms")["rooms"] if r["room"] == room)
    assert parse_time(listed["presence_as_of"]) <= away, listed
    asked = parse_time(moment)
    with api.app.test_request_context():
        *_, page_says = day_presence(room, asked.date(), asked, Caller(role=Role.COMPLIANCE, scope=AllRooms()))
    assert page_says == there["unknown_why"], "the room page says why as the API does"


def test_the_api_does_not_claim_presence_in_a_room_the_listener_was_kicked_from(prosody, people, store_url, tmp_path):
    """The API on another host than the listener's (no status file there): it reads the status the listener keeps
    in the store."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "away")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    status_file = tmp_path / "status.json"
    settings = {"jid": "dave@localhost", "include": (room,), "retry_refused_after": 300.0}
    with open_event_store(store_url) as store:
        api = Api(store, store_url, tmp_path / "api-host" / "status.json", tmp_path)
        try:
            with running_listener(prosody, store, status_file, **settings) as listener:
                wait_joined(listener, room)
                wait_for_event(store, room, ("joined", "bob"))
                alice.kick(room, "archive", "no bots")
                wait_for(lambda: room in listener.listener.refused_rooms(), message="the listener refused its way back")
                away = wait_for(lambda: read_status(status_file).rooms_away.get(room), message="the room away")
                bob.leave(room)  # nobody is there to see it
                assert_not_known_since(api, room, away, beat_after(status_file, away))
        finally:
            api.close()


def test_the_api_does_not_claim_presence_in_a_room_caught_up_after_a_disconnect(prosody, people, store_url, tmp_path):
    """The connection cut and back, the other room joined again and live, this one's catch-up not answered yet."""
    alice, bob = people["alice"], people["bob"]
    room, other = unique_room(prosody, "cut"), unique_room(prosody, "cut")
    alice.create_room(room, "alice")
    alice.create_room(other, "alice")
    bob.join(room, "bob")
    status_file = tmp_path / "status.json"
    with TcpProxy("127.0.0.1", prosody.port) as proxy, open_event_store(store_url) as store:
        api = Api(store, store_url, status_file, tmp_path)
        try:
            with running_listener(prosody, store, status_file, port=proxy.port, include=(room, other)) as listener:
                wait_joined(listener, room)
                wait_joined(listener, other)
                wait_for_event(store, room, ("joined", "bob"))
                listener.listener.client.add_filter(  # the room's archive does not answer: its catch-up waits
                    "out", lambda s: None if s.xml.find(q(MAM, "query")) is not None and s["to"].bare == room else s)
                proxy.cut()
                wait_for(lambda: not listener.listener.status.connected, message="the listener to notice")
                bob.leave(room)  # nobody is there to see it
                proxy.restore()
                wait_joined(listener, other, timeout=30)
                away = wait_for(lambda: read_status(status_file).rooms_away.get(room), message="the room away")
                alice.say(other, "the other room is live")
                wait_for_event(store, other, ("message", "alice", "the other room is live"))
                assert room not in listener.joined_rooms(), "the room's catch-up was to wait"
                assert_not_known_since(api, room, away, beat_after(status_file, away))
        finally:
            api.close()
