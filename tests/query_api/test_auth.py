"""Who may call: bearer tokens, the site's user header, anonymous read, the permission callback."""

from __future__ import annotations

import time
import urllib.parse

import pytest

from query_api.access import MAX_ASK_BYTES, PermissionCallback, ask_batches
from query_api.roles import Role

from .conftest import LOBBY, PUBLIC, SECRET, auth


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer cat_not-a-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "cat_no_scheme"},
    ],
)
def test_bad_tokens_are_401_even_with_anonymous_read(client, headers):
    response = client.get(f"/api/v1/rooms/{PUBLIC}/events", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_token_is_401_when_anonymous_read_is_off(client, api_settings, archive, token_store, seeded_url):
    from query_api import create_app

    from .conftest import make_config

    closed = create_app(make_config(seeded_url), store=archive, tokens=token_store).test_client()
    assert closed.get(f"/api/v1/rooms/{PUBLIC}/events").status_code == 401
    assert closed.get("/metrics").status_code == 401


def test_revoked_token_is_401(client, tokens, token_store):
    assert client.get("/api/v1/events", headers=auth(tokens["compliance"])).status_code == 200
    token_store.revoke(token_store.lookup(tokens["compliance"]).id)
    assert client.get("/api/v1/events", headers=auth(tokens["compliance"])).status_code == 401


def test_site_token_must_name_its_user(client, tokens):
    response = client.get("/api/v1/rooms", headers=auth(tokens["site"]))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "missing_user"


def test_permission_callback_decides_and_is_cached(permission_site):
    permission_site.allowed = {("carol", LOBBY)}
    callback = PermissionCallback(permission_site.url, token="site-secret", cache_seconds=60)
    assert callback.allowed("carol", LOBBY)
    assert not callback.allowed("carol", SECRET)
    assert not callback.allowed("dave", LOBBY)
    assert callback.allowed("carol", LOBBY)  # cached
    assert len(permission_site.requests) == 3
    assert permission_site.requests[0] == {"user": "carol", "rooms": [LOBBY], "authorization": "Bearer site-secret"}
    permission_site.allowed = set()
    assert callback.allowed("carol", LOBBY)  # still the cached answer
    assert not PermissionCallback(permission_site.url, cache_seconds=0).allowed("carol", LOBBY)


def test_permission_callback_failure_denies_and_is_asked_again(permission_site):
    permission_site.allowed = {("carol", LOBBY)}
    permission_site.broken = True
    callback = PermissionCallback(permission_site.url, cache_seconds=60)
    assert not callback.allowed("carol", LOBBY)
    permission_site.broken = False
    assert callback.allowed("carol", LOBBY)  # the failure was not cached
    assert not PermissionCallback("http://127.0.0.1:9/unreachable", timeout=0.5).allowed("carol", LOBBY)


def test_the_site_is_asked_about_many_rooms_at_once_within_a_deadline(permission_site):
    rooms = [f"room-{i:03}@conference.localhost" for i in range(156)]
    permission_site.allowed = {("carol", room) for room in rooms[::3]}
    permission_site.delay = 0.3  # each call: made at once, they end within the deadline together
    callback = PermissionCallback(permission_site.url, timeout=2.0, cache_seconds=60)
    assert callback.allowed_rooms("carol", rooms) == rooms[::3]
    asked = [request["rooms"] for request in permission_site.requests]
    assert sorted(room for call in asked for room in call) == rooms and len(asked) == len(ask_batches("carol", rooms))
    assert callback.allowed_rooms("carol", rooms) == rooms[::3] and callback.allowed("carol", rooms[0])
    assert len(permission_site.requests) == len(asked)  # all from the cache


def test_a_request_about_many_rooms_asks_in_calls_a_web_server_takes(permission_site):
    """Every room in one call's URL: at 3,000 rooms the request line passed 64 KiB, Python's http.server answered
    414, and the user was denied every room (nginx and Apache refuse past 8 KiB: a few hundred rooms)."""
    rooms = [f"project-room-{i:04}@conference.localhost" for i in range(3000)]
    permission_site.allowed = {("carol", rooms[-1]), ("carol", rooms[7])}
    callback = PermissionCallback(permission_site.url, timeout=5.0, cache_seconds=0)
    assert callback.allowed_rooms("carol", rooms) == [rooms[7], rooms[-1]]
    for request in permission_site.requests:
        query = urllib.parse.urlencode([("user", "carol"), *(("room", room) for room in request["rooms"])])
        assert len(query) <= MAX_ASK_BYTES
    assert ask_batches("carol", ["a" * 5000 + "@x", "b@x", "c@x"]) == [["a" * 5000 + "@x"], ["b@x", "c@x"]]


def test_a_slow_site_is_given_up_on_at_the_deadline_and_denies(permission_site):
    permission_site.allowed = {("carol", LOBBY)}
    permission_site.delay = 600  # held until the test ends: an answer waited for would allow LOBBY
    callback = PermissionCallback(permission_site.url, timeout=0.5, cache_seconds=60)
    assert callback.allowed_rooms("carol", [LOBBY, SECRET]) == []
    assert not callback.allowed("carol", LOBBY)
    assert len(permission_site.requests) == 2  # asked twice: a site given up on is not cached as a denial


def test_answers_other_than_a_list_of_the_asked_rooms_deny(permission_site):
    callback = PermissionCallback(permission_site.url, cache_seconds=0)
    for answer in ({"allowed": True}, {"allowed": "yes"}, {"allowed": [1]}, [LOBBY], {"rooms": [LOBBY]}):
        callback_answer = callback.decide(answer, [LOBBY, SECRET])
        assert callback_answer is None, answer
    assert callback.decide({"allowed": [LOBBY, "elsewhere@x"]}, [LOBBY, SECRET]) == {LOBBY: True, SECRET: False}
    assert callback.decide({"allowed": True}, [LOBBY]) == {LOBBY: True}  # one room asked: a boolean is fine


def test_site_token_with_permission_callback_over_http(permission_site, archive, token_store, seeded_url):
    from query_api import create_app

    from .conftest import make_config

    permission_site.allowed = {("carol", LOBBY), ("dave", SECRET)}
    config = make_config(seeded_url, permission_url=permission_site.url, permission_cache_seconds=60)
    client = create_app(config, store=archive, tokens=token_store).test_client()
    token = token_store.create(Role.SITE)[0]  # no static list: the callback decides
    carol = client.get(f"/api/v1/rooms/{LOBBY}/presence", headers=auth(token, "carol"))
    assert carol.status_code != 404
    assert client.get(f"/api/v1/rooms/{SECRET}/presence", headers=auth(token, "carol")).status_code == 404
    assert client.get(f"/api/v1/rooms/{SECRET}/presence", headers=auth(token, "dave")).status_code != 404
    asked = len(permission_site.requests)
    client.get(f"/api/v1/rooms/{LOBBY}/presence", headers=auth(token, "carol"))
    assert len(permission_site.requests) == asked  # answered from the cache


def test_a_room_no_url_can_carry_is_denied_not_a_500(permission_site, archive, token_store, seeded_url):
    """A JSON string may hold a lone surrogate (a ticket request's room "\\ud800"), which no URL can carry:
    asking the permission site about it raised UnicodeEncodeError, a 500 of the request."""
    from query_api import create_app

    from .conftest import make_config

    callback = PermissionCallback(permission_site.url, cache_seconds=60)
    assert not callback.allowed("carol", "\ud800@conference.localhost")
    config = make_config(seeded_url, permission_url=permission_site.url)
    client = create_app(config, store=archive, tokens=token_store).test_client()
    ticket = client.post("/widget/tickets", data=b'{"room": "\\ud800@conference.localhost"}',
                         headers={**auth(token_store.create(Role.SITE)[0], "carol"), "Content-Type": "application/json"})
    assert ticket.status_code == 404, ticket.get_data(as_text=True)


def test_anonymous_reads_public_rooms_only(client):
    assert client.get(f"/api/v1/rooms/{SECRET}/events").status_code == 401  # replay needs a token
    assert client.get(f"/api/v1/rooms/{PUBLIC}/presence").status_code != 404
    assert client.get(f"/api/v1/rooms/{LOBBY}/presence").status_code == 404


def test_granted_room_names_with_glob_characters_are_literal_unless_marked():
    from query_api.access import RoomPatterns

    scope = RoomPatterns(["a*b@conference.example.org", "what?@conference.example.org", "[x]@conference.example.org"])
    assert scope.allows("a*b@conference.example.org") and scope.allows("what?@conference.example.org")
    assert scope.allows("[x]@conference.example.org")
    assert not scope.allows("axxb@conference.example.org") and not scope.allows("whats@conference.example.org")
    assert not scope.allows("x@conference.example.org")


def test_granted_rooms_are_jids_or_marked_shell_globs_in_any_case():
    from query_api.access import RoomPatterns

    scope = RoomPatterns(["Dev@Conference.Example.org", "*@ops.example.org", "glob:team-?@conference.example.org"])
    assert scope.allows("dev@conference.example.org")
    assert scope.allows("alerts@ops.example.org") and scope.allows("team-a@conference.example.org")
    assert not scope.allows("devx@conference.example.org") and not scope.allows("alerts@ops.example.org.evil")
    assert not scope.allows("team-ab@conference.example.org")
    assert scope.allowed_rooms(["x@ops.example.org", "y@elsewhere", "dev@conference.example.org"]) == [
        "x@ops.example.org", "dev@conference.example.org"
    ]


def test_a_request_waiting_for_the_permission_site_lets_another_run_meanwhile(
    permission_site, archive, views, search_index, token_store, seeded_url, tokens
):
    """With one turn ([api] active_requests = 1), a request whose rooms the site is still deciding
    does not hold it: another request is answered before the site answers the first."""
    import threading

    from query_api import create_app

    from .conftest import make_config

    permission_site.allowed = {("carol", LOBBY)}
    config = make_config(seeded_url, active_requests=1, permission_url=permission_site.url, permission_timeout=10)
    app = create_app(config, store=archive, views=views, search=search_index, tokens=token_store)
    site_token = token_store.create(Role.SITE)[0]
    permission_site.delay = 600  # until released below
    finished = []

    def get(name, token, user=None):
        response = app.test_client().get(f"/api/v1/rooms/{LOBBY}/transcript", headers=auth(token, user))
        finished.append((name, response.status_code))

    first = threading.Thread(target=get, args=("site", site_token, "carol"))
    first.start()
    while not permission_site.requests:  # the first request is waiting for the site's answer
        time.sleep(0.01)
    get("compliance", tokens["compliance"])
    permission_site.release.set()
    first.join(15)
    assert finished == [("compliance", 200), ("site", 200)]
