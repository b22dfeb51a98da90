"""What a new user (compliance officer, site admin, analyst) met in a first hour with the API: each answer says
what is wrong in the caller's terms, and one kind of mistake gets one kind of answer."""

from __future__ import annotations

from .conftest import LOBBY, PUBLIC, auth


def test_an_analyst_at_holds_is_told_it_may_not_use_legal_holds(client, tokens):
    """It read "the analyst role may not use audit endpoints", at an endpoint of legal holds."""
    analyst = auth(tokens["analyst"])
    for method, path, doing in (("get", "/api/v1/holds", "list legal holds"),
                                ("post", "/api/v1/holds?case=x", "place legal holds"),
                                ("post", "/api/v1/holds/abc/release", "release legal holds")):
        answer = getattr(client, method)(path, headers=analyst)
        assert answer.status_code == 403
        assert answer.json["error"]["message"] == f"the analyst role may not {doing}: only the compliance role may"


def test_a_ticket_request_of_the_wrong_content_type_is_a_415_as_for_exports_and_holds(client, tokens):
    """A form-encoded ticket request answered 400 ("send a JSON object"), where a JSON body to exports or holds
    answers 415: a body of a kind the endpoint does not take is a 415 everywhere, saying which it takes."""
    site = auth(tokens["site"], "carol")
    form = client.post("/widget/tickets", data={"room": LOBBY}, headers=site)
    assert form.status_code == 415 and form.json["error"]["code"] == "unsupported_media_type"
    assert "application/json" in form.json["error"]["message"]
    held = client.post("/api/v1/holds", json={"case": "x"}, headers=auth(tokens["compliance"]))
    assert held.status_code == 415 and held.json["error"]["code"] == "unsupported_media_type"
    assert client.post("/widget/tickets", json={"room": LOBBY}, headers=site).status_code == 200
    # JSON that is not an object naming a room is still a bad parameter.
    assert client.post("/widget/tickets", json=["x"], headers=site).status_code == 400


def test_a_bare_room_name_is_told_the_api_names_rooms_by_jid(client, tokens):
    """The CLI takes `lobby`; the API answered "no room 'lobby'", as if the archive had none. It still answers 404
    (the same for a room one may not see), saying how the API names rooms, from what was sent alone."""
    for path in ("/api/v1/rooms/lobby/transcript", "/api/v1/export?room=lobby"):
        answer = client.get(path, headers=auth(tokens["compliance"]))
        assert answer.status_code == 404
        assert answer.json["error"]["message"] == "no room 'lobby': a room is named by its JID here (name@service)"
    unseen = client.get("/api/v1/rooms/nobody@conference.localhost/transcript", headers=auth(tokens["compliance"]))
    assert unseen.json["error"]["message"] == "no room 'nobody@conference.localhost'"


def test_every_refusal_by_role_says_what_the_role_may_not_do(client, tokens):
    """"the site role may not use replay endpoints": which endpoints are those? It says what, in the reader's terms."""
    site = auth(tokens["site"], "carol")
    for path, doing in (("/api/v1/events", "replay events"),
                        (f"/api/v1/rooms/{LOBBY}/state?at=2024-05-01T12:00:00Z", "read a room's state at a moment"),
                        (f"/api/v1/export?room={LOBBY}", "export rooms")):
        message = client.get(path, headers=site).json["error"]["message"]
        assert message.startswith(f"the site role may not {doing}: only the "), message
    analyst = client.get("/api/v1/search?q=x", headers=auth(tokens["analyst"])).json["error"]["message"]
    assert analyst == "the analyst role may not search messages: only the compliance and site roles may"


def test_a_ticket_reads_its_room_named_in_any_case_as_every_room_endpoint_does(client, tokens):
    """A ticket for lobby@… answered "this widget's ticket is for another room" at /widget/LOBBY@…/activity, where
    every room endpoint takes a JID in any case (``RoomNames``); another room is still refused."""
    site = auth(tokens["site"], "carol")
    ticket = client.post("/widget/tickets", json={"room": LOBBY}, headers=site).json["ticket"]
    shouted = client.get(f"/widget/{LOBBY.upper()}/activity", headers={"X-Widget-Ticket": ticket})
    assert shouted.status_code == 200, shouted.json
    assert client.get(f"/widget/{PUBLIC}/activity", headers={"X-Widget-Ticket": ticket}).status_code == 401
