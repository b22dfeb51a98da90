"""What the transcript API and the compliance page say of how a removal was captured and of a gap, and
``around`` by a decimal message id, on SQLite and PostgreSQL (reviewer: LOW 7, LOW 8)."""

from __future__ import annotations

from archive import events as ev

from .conftest import auth
from .test_export_ranges import D2, ROOM, _at, h, history
from .web.test_pages import sign_in


def test_the_api_and_the_compliance_page_say_how_a_removal_was_captured_and_what_a_gap_holds(
    private_app, private_seeded, tokens
):
    private_seeded.store.append(history())
    private_seeded.catch_up()
    client, headers = private_app.test_client(), auth(tokens["compliance"])
    url = f"/api/v1/rooms/{ROOM}/transcript?day=2024-06-02"
    lines = {line.get("body"): line for line in client.get(url, headers=headers).json["lines"]}
    assert lines["echo imported"]["removed"]["capture"] == "import" and lines["echo imported"]["capture"] == "import"
    assert (lines["foxtrot two"]["versions"][0]["capture"], lines["foxtrot two"]["edit_capture"]) == ("backfill",) * 2
    day_one = client.get(f"/api/v1/rooms/{ROOM}/transcript?day=2024-06-01", headers=headers).json["lines"]
    assert "capture" not in next(line for line in day_one if line.get("body") == "alpha posted day one")["removed"]
    text = client.get(url + "&format=text", headers=headers).get_data(as_text=True)
    assert "<eve> echo imported (removed, imported)" in text
    gap = client.get(f"/api/v1/rooms/{ROOM}/transcript?day=2024-06-01&format=text", headers=headers).get_data(as_text=True)
    assert "(not verified against the room's archive; 2 messages recovered): listener away" in gap
    web = private_app.test_client()
    sign_in(web, tokens["compliance"])
    page = web.get(f"/rooms/{ROOM}?day=2024-06-02").get_data(as_text=True)
    assert "retracted by moderator mod (imported)" in " ".join(page.split())


def test_around_a_decimal_message_id_finds_the_message(private_app, private_seeded, tokens):
    private_seeded.store.append([_at(h(D2, 20), ev.MessagePosted, nick="alice", body="by an ejabberd id",
                                     stanza_id="1717171717171717")])
    private_seeded.catch_up()
    client, headers = private_app.test_client(), auth(tokens["compliance"])
    found = client.get(f"/api/v1/rooms/{ROOM}/transcript?around=1717171717171717&limit=1", headers=headers)
    assert found.status_code == 200 and [line["body"] for line in found.json["lines"]] == ["by an ejabberd id"]
    web = private_app.test_client()
    sign_in(web, tokens["compliance"])
    assert "by an ejabberd id" in web.get(f"/rooms/{ROOM}?around=1717171717171717").get_data(as_text=True)
