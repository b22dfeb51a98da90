"""The authorization matrix: every caller x every endpoint x a permitted, a forbidden and a missing room.

A role without the endpoint's capability gets 403 whatever the room (an anonymous
caller 401: a token is what it lacks); a caller
with it gets 200 for a room it may see and, for a room it may not see, exactly
the 404 a missing room gets. Lists (rooms, log, search, export) never mention
a forbidden room, in items, counts or facets.
"""

from __future__ import annotations


import pytest

from query_api import create_app
from query_api.roles import Role

from .conftest import LOBBY, MISSING, PUBLIC, SECRET, auth, make_config

T = "2024-05-01T12:00:15Z"
ROOM_ENDPOINTS = {
    "transcript": "/api/v1/rooms/{room}/transcript",
    "transcript_text": "/api/v1/rooms/{room}/transcript?format=text",
    "presence_at": f"/api/v1/rooms/{{room}}/presence?at={T}",
    "presence_range": "/api/v1/rooms/{room}/presence?from=2024-05-01T12:00:00Z&to=2024-05-01T13:00:00Z",
    "state": f"/api/v1/rooms/{{room}}/state?at={T}",
    "room_events": "/api/v1/rooms/{room}/events",
    "export_room": "/api/v1/export?room={room}",
}
LIST_ENDPOINTS = {
    "rooms": "/api/v1/rooms",
    "events": "/api/v1/events",
    "search": "/api/v1/search?q=hello",
    "export_search": "/api/v1/export?q=hello",
}
OPEN_ENDPOINTS = {"healthz": "/healthz", "openapi": "/api/v1/openapi.json"}
# What each caller may use: written out here, independently of query_api.roles.
ALLOWED = {
    "compliance": set(ROOM_ENDPOINTS) | set(LIST_ENDPOINTS),
    "analyst": {"presence_at", "presence_range", "state", "room_events", "rooms", "events"},
    "site_static": {"transcript", "transcript_text", "presence_at", "presence_range", "rooms", "search"},
    "site_callback": {"transcript", "transcript_text", "presence_at", "presence_range", "rooms", "search"},
    "anonymous": {"transcript", "transcript_text", "presence_at", "presence_range", "rooms", "search"},
}
SEES = {
    "compliance": {LOBBY, SECRET, PUBLIC},
    "analyst": {LOBBY},
    "site_static": {LOBBY, PUBLIC},
    "site_callback": {LOBBY, PUBLIC},
    "anonymous": {PUBLIC},
}


@pytest.fixture
def callers(archive, views, search_index, token_store, seeded_url, permission_site):
    """caller name -> (test client, headers)."""
    permission_site.allowed = {("carol", LOBBY), ("carol", PUBLIC), ("dave", SECRET)}
    static = create_app(
        make_config(seeded_url, anonymous_read=True, public_rooms=(PUBLIC,)),
        store=archive, views=views, search=search_index, tokens=token_store,
    ).test_client()  # fmt: skip
    callback = create_app(
        make_config(seeded_url, permission_url=permission_site.url), store=archive, views=views, search=search_index, tokens=token_store
    ).test_client()
    return {
        "compliance": (static, auth(token_store.create(Role.COMPLIANCE)[0])),
        "analyst": (static, auth(token_store.create(Role.ANALYST, (LOBBY,))[0])),
        "site_static": (static, auth(token_store.create(Role.SITE, (LOBBY, PUBLIC))[0], "carol")),
        "site_callback": (callback, auth(token_store.create(Role.SITE)[0], "carol")),
        "anonymous": (static, {}),
        "no_token": (callback, {}),  # anonymous read off
        "bad_token": (static, auth("cat_forged")),
    }


def refused(name: str) -> int:
    return 401 if name == "anonymous" else 403


def anonymised(response, room: str) -> tuple[int, str]:
    return response.status_code, response.get_data(as_text=True).replace(room, "ROOM")


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_room_endpoints(callers, name):
    client, headers = callers[name]
    permitted = sorted(SEES[name])[0]
    forbidden = [r for r in (SECRET, LOBBY, PUBLIC) if r not in SEES[name]]
    for endpoint, url in ROOM_ENDPOINTS.items():
        answers = {room: client.get(url.format(room=room), headers=headers) for room in [permitted, *forbidden, MISSING]}
        if endpoint not in ALLOWED[name]:
            assert {r.status_code for r in answers.values()} == {refused(name)}, endpoint
            assert len({anonymised(r, room) for room, r in answers.items()}) == 1, endpoint
            continue
        assert answers[permitted].status_code == 200, (endpoint, answers[permitted].get_data(as_text=True))
        missing = anonymised(answers[MISSING], MISSING)
        assert missing[0] == 404
        for room in forbidden:
            assert anonymised(answers[room], room) == missing, (endpoint, room)


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_list_endpoints_never_mention_a_forbidden_room(callers, name):
    client, headers = callers[name]
    hidden = {SECRET, LOBBY, PUBLIC} - SEES[name]
    for endpoint, url in LIST_ENDPOINTS.items():
        response = client.get(url, headers=headers)
        if endpoint not in ALLOWED[name]:
            assert response.status_code == refused(name), endpoint
            continue
        assert response.status_code == 200, (endpoint, response.get_data(as_text=True))
        body = response.get_data(as_text=True)
        for room in hidden:
            tag = room.split("@")[0]
            assert room not in body and f"from {tag}" not in body, (endpoint, room)
        for room in SEES[name]:
            if endpoint in ("rooms", "search", "events"):
                assert room in body, (endpoint, room)


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_search_counts_and_facets_cover_only_visible_rooms(callers, name):
    client, headers = callers[name]
    response = client.get("/api/v1/search?q=hello&facets=true", headers=headers)
    if "search" not in ALLOWED[name]:
        assert response.status_code == refused(name)
        return
    result = response.json
    assert result["total"] == len(SEES[name])  # one "hello from <room>" per room
    assert {hit["room"] for hit in result["hits"]} == SEES[name]
    assert set(result["facets"]["rooms"]) == SEES[name]
    assert sum(result["facets"]["rooms"].values()) == result["total"]


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_rooms_lists_exactly_the_visible_rooms(callers, name):
    client, headers = callers[name]
    rooms = client.get("/api/v1/rooms", headers=headers).json
    assert {room["room"] for room in rooms["rooms"]} == SEES[name]


@pytest.mark.parametrize("name", ["no_token", "bad_token"])
def test_without_a_valid_token_everything_but_the_open_endpoints_is_401(callers, name):
    client, headers = callers[name]
    for url in [*(u.format(room=LOBBY) for u in ROOM_ENDPOINTS.values()), *LIST_ENDPOINTS.values(), "/metrics"]:
        response = client.get(url, headers=headers)
        assert response.status_code == 401, url
        assert LOBBY not in response.get_data(as_text=True)
    for url in OPEN_ENDPOINTS.values():
        assert client.get(url, headers=headers).status_code == 200


def test_real_jids_only_for_compliance(callers):
    for name in ALLOWED:
        client, headers = callers[name]
        room = sorted(SEES[name])[0]
        bodies = [
            client.get(url.format(room=room), headers=headers).get_data(as_text=True)
            for endpoint, url in {**ROOM_ENDPOINTS, **LIST_ENDPOINTS}.items()
            if endpoint in ALLOWED[name]
        ]
        leaked = any("@localhost/" in body for body in bodies)
        assert leaked == (name == "compliance"), name


@pytest.mark.parametrize("name", [*sorted(ALLOWED), "no_token", "bad_token"])
def test_open_endpoints_and_metrics_for_every_caller(callers, name):
    client, headers = callers[name]
    for url in OPEN_ENDPOINTS.values():
        assert client.get(url, headers=headers).status_code == 200, url
    metrics = client.get("/metrics", headers=headers)
    # /metrics counts every room's traffic: only for tokens that see every room
    assert metrics.status_code == {"compliance": 200, "anonymous": 401, "no_token": 401, "bad_token": 401}.get(name, 403)


@pytest.mark.parametrize("name", ["site_static", "site_callback", "anonymous"])
def test_searching_a_forbidden_room_by_name_answers_as_for_a_missing_one(callers, name):
    client, headers = callers[name]
    for forbidden in {SECRET, LOBBY, PUBLIC} - SEES[name]:
        for form in ("room:{}", "room:{} hello"):
            seen = client.get("/api/v1/search", query_string={"q": form.format(forbidden)}, headers=headers)
            missing = client.get("/api/v1/search", query_string={"q": form.format(MISSING)}, headers=headers)
            assert seen.status_code == missing.status_code == 200
            assert anonymised(seen, forbidden) == anonymised(missing, MISSING)
