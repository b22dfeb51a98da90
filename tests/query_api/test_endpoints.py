"""What each view-backed endpoint answers: search, rooms, transcript, presence, state, metrics."""

from __future__ import annotations

import json
import re

import pytest
from msgspec.structs import replace

from query_api.context import EXTENSION
from query_api.metrics import RequestMetrics
from query_api.settings import ApiSettings

from .conftest import LOBBY, PUBLIC, SECRET, auth

T = "2024-05-01T12:00:15Z"


def test_search_sorting_paging_and_facets(client, tokens):
    headers = auth(tokens["compliance"])
    first = client.get("/api/v1/search?q=lobby&sort=oldest&limit=2&facets=true", headers=headers).json
    assert first["total"] == 3  # hello, fixed, and the retracted oops (compliance scope)
    assert [h["body"] for h in first["hits"]] == ["hello from lobby", "fixed in lobby"]
    assert first["hits"][0]["jid"] == "alice@localhost"  # the index keeps bare JIDs
    assert first["facets"]["rooms"] == {LOBBY: 3} and first["facets"]["senders"] == {"alice": 2, "bob": 1}
    rest = client.get(f"/api/v1/search?q=lobby&sort=oldest&limit=2&facets=true&cursor={first['next']}", headers=headers).json
    assert [h["body"] for h in rest["hits"]] == ["oops lobby secret"] and rest["hits"][0]["retracted"]
    assert rest["next"] is None and rest["facets"] is None  # facets come with the first page
    newest = client.get("/api/v1/search?q=lobby&sort=newest&limit=1", headers=headers).json
    assert newest["facets"] is None  # not asked for: not counted
    assert newest["hits"][0]["body"] == "oops lobby secret"
    assert first["total_relation"] == rest["total_relation"] == "eq"
    exact = client.get("/api/v1/search?q=lobby&sort=newest&limit=1&exact_total=true", headers=headers).json
    assert (exact["total"], exact["total_relation"], exact["hits"]) == (3, "eq", newest["hits"])


def test_search_takes_its_switches_as_every_endpoint_takes_a_boolean(client, tokens):
    """follow=1 was a boolean and facets=1 a 400 ("must be one of true, false"): two rules for one kind of value."""
    headers = auth(tokens["compliance"])
    for on, off in (("1", "0"), ("yes", "no"), ("True", "False")):
        assert client.get(f"/api/v1/search?q=lobby&facets={on}", headers=headers).json["facets"] is not None, on
        assert client.get(f"/api/v1/search?q=lobby&facets={off}", headers=headers).json["facets"] is None, off
        assert client.get(f"/api/v1/search?q=lobby&sort=newest&exact_total={on}", headers=headers).status_code == 200
    refused = client.get("/api/v1/search?q=lobby&facets=maybe", headers=headers)
    assert refused.status_code == 400 and "true or false" in refused.json["error"]["message"]


def test_search_hides_retractions_and_originals_outside_compliance(client, tokens):
    site = auth(tokens["site"], "carol")
    result = client.get("/api/v1/search?q=lobby", headers=site).json
    assert result["total"] == 2 and all("retracted" not in h and "earlier_versions" not in h for h in result["hits"])
    assert client.get("/api/v1/search?q=typo", headers=site).json["total"] == 0
    assert client.get("/api/v1/search?q=typo", headers=auth(tokens["compliance"])).json["total"] == 3
    assert client.get("/api/v1/search?q=is:retracted", headers=site).status_code == 400
    assert client.get("/api/v1/search?q=jid:alice@localhost", headers=site).status_code == 400  # no searching by real JID
    assert client.get("/api/v1/search?q=jid:alice@localhost", headers=auth(tokens["compliance"])).json["total"] == 3


@pytest.mark.parametrize(
    ("query", "code"),
    [("q=%22open", "invalid_query"), ("q=a%20AND", "invalid_query"), ("q=x&sort=best", "invalid_parameter"),
     ("sort=newest", "invalid_parameter"), ("q=x&cursor=zzz", "invalid_parameter"), ("q=x&limit=501", "invalid_parameter"),
     ("q=x&sort=newest&exact_total=maybe", "invalid_parameter")],
)  # fmt: skip
def test_search_bad_input(client, tokens, query, code):
    response = client.get(f"/api/v1/search?{query}", headers=auth(tokens["compliance"]))
    assert response.status_code == 400 and response.json["error"]["code"] == code
    if code == "invalid_query" and "cursor" not in query:
        assert isinstance(response.json["error"]["position"], int)


def test_rooms_summary_and_paging(client, tokens):
    headers = auth(tokens["compliance"])
    first = client.get("/api/v1/rooms?limit=2", headers=headers).json
    assert [r["room"] for r in first["rooms"]] == [LOBBY, PUBLIC]
    lobby = first["rooms"][0]
    assert lobby["messages"] == 3 and lobby["occupants_now"] == 1 and lobby["presence_known"]
    assert lobby["last_activity"] == "2024-05-01T12:00:51Z"
    second = client.get(f"/api/v1/rooms?limit=2&cursor={first['next']}", headers=headers).json
    assert [r["room"] for r in second["rooms"]] == [SECRET] and second["next"] is None
    site = client.get("/api/v1/rooms", headers=auth(tokens["site"], "carol")).json["rooms"]
    assert next(r for r in site if r["room"] == LOBBY)["messages"] == 2  # the removed message is not counted


def test_transcript_paging_day_and_around(client, tokens):
    headers = auth(tokens["site"], "carol")
    latest = client.get(f"/api/v1/rooms/{LOBBY}/transcript?limit=3", headers=headers).json
    assert [line["id"] for line in latest["lines"]] == [9, 10, 11] and latest["next"] is None
    earlier = client.get(f"/api/v1/rooms/{LOBBY}/transcript?limit=3&cursor={latest['previous']}", headers=headers).json
    assert [line["id"] for line in earlier["lines"]] == [4, 5, 7]
    later = client.get(f"/api/v1/rooms/{LOBBY}/transcript?limit=3&cursor={earlier['next']}", headers=headers).json
    assert [line["id"] for line in later["lines"]] == [9, 10, 11]
    day = client.get(f"/api/v1/rooms/{LOBBY}/transcript?day=2024-05-01&limit=2", headers=headers).json
    assert [line["id"] for line in day["lines"]] == [1, 2] and day["next"]
    assert client.get(f"/api/v1/rooms/{LOBBY}/transcript?day=2024-05-02", headers=headers).json["lines"] == []
    around = client.get(f"/api/v1/rooms/{LOBBY}/transcript?around=m2-lobby&limit=3", headers=headers).json
    assert around["target"] == 5 and [line["id"] for line in around["lines"]] == [4, 5, 7]
    html = client.get(f"/api/v1/rooms/{LOBBY}/transcript?around=m2-lobby&limit=3&format=html", headers=headers)
    assert '<li id="l5" class="target">' in html.get_data(as_text=True)


def test_a_room_is_found_by_its_jid_in_any_case(client, tokens):
    """JIDs are not case-sensitive (search's room:, grants and holds take any case), but a room's endpoints
    answered 404 for Lobby@Conference.localhost, the room lobby@conference.localhost in another case."""
    shouting = LOBBY.upper()
    compliance, analyst = auth(tokens["compliance"]), auth(tokens["analyst"])
    page = client.get(f"/api/v1/rooms/{shouting}/transcript", headers=compliance)
    assert page.status_code == 200 and page.json["room"] == LOBBY
    assert page.json["lines"] == client.get(f"/api/v1/rooms/{LOBBY}/transcript", headers=compliance).json["lines"]
    for path in (f"/api/v1/rooms/{shouting}/presence?at=2024-05-01T12:00:15Z", f"/api/v1/rooms/{shouting}/state",
                 f"/api/v1/rooms/{shouting}/events", f"/api/v1/export?room={shouting}&format=csv"):
        answer = client.get(path, headers=analyst if "export" not in path else compliance)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True))
        assert "lobby" in answer.get_data(as_text=True)
    exported = client.get(f"/api/v1/export?room={shouting}&q=hello", headers=compliance).get_data(as_text=True)
    manifest = json.loads(exported.splitlines()[-1])["manifest"]
    assert manifest["rooms"] == [LOBBY] and [head[0] for head in manifest["chain_heads"]] == [LOBBY]
    assert client.get(f"/api/v1/rooms/{SECRET.upper()}/transcript", headers=auth(tokens["site"], "carol")).status_code == 404


def test_transcript_text_and_html_times_in_a_time_zone(app, client, tokens):
    headers = auth(tokens["compliance"])
    url = f"/api/v1/rooms/{LOBBY}/transcript?day=2024-05-01&format="
    utc = client.get(url + "text", headers=headers).text.splitlines()[0]
    kolkata = client.get(url + "text&tz=Asia/Kolkata", headers=headers).text.splitlines()[0]
    assert utc.startswith("[2024-05-01T12:00:00Z]") and kolkata.startswith("[2024-05-01T17:30:00+05:30]")
    assert "17:30:00+05:30" in client.get(url + "html&tz=Asia/Kolkata", headers=headers).text
    assert client.get(url + "json&tz=Asia/Kolkata", headers=headers).json["lines"][0]["at"].endswith("Z")  # data stays UTC
    bad = client.get(url + "text&tz=Mars/Olympus", headers=headers)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_parameter"
    context = app.extensions[EXTENSION]
    settings = context.settings
    context.settings = replace(settings, time_zone="America/New_York")  # [api] time_zone: the default
    try:
        assert client.get(url + "text", headers=headers).text.startswith("[2024-05-01T08:00:00-04:00]")
    finally:
        context.settings = settings
    with pytest.raises(ValueError, match="not a time zone"):
        ApiSettings(time_zone="Nowhere/Land")


def test_transcript_ordinary_and_compliance_views(client, tokens):
    ordinary = client.get(f"/api/v1/rooms/{LOBBY}/transcript", headers=auth(tokens["site"], "carol")).json["lines"]
    removed = next(line for line in ordinary if line["id"] == 7)
    assert removed.get("body") is None
    assert removed["removed"]["by_nick"] == "bob" and "by_jid" not in removed["removed"]
    assert "versions" not in next(line for line in ordinary if line["id"] == 5)
    full = client.get(f"/api/v1/rooms/{LOBBY}/transcript", headers=auth(tokens["compliance"])).json["lines"]
    assert next(line for line in full if line["id"] == 7)["body"] == "oops lobby secret"
    assert next(line for line in full if line["id"] == 5)["versions"][0]["body"] == "typo in lobby"
    html = client.get(f"/api/v1/rooms/{LOBBY}/transcript?format=html", headers=auth(tokens["site"], "carol"))
    text = html.get_data(as_text=True)
    assert text.startswith("<!doctype html>") and "message removed" in text and "oops" not in text
    stylesheet = text.split('<link rel="stylesheet" href="')[1].split('"')[0]
    assert client.get(stylesheet).status_code == 200  # a file, so that the pages' CSP (style-src 'self') allows it


def test_transcript_html_escapes_what_people_say(private_app, private_seeded, tokens):
    from tests.factories import message

    private_seeded.store.append([message(100, "<script>alert(1)</script>", "<b>mallory</b>", room=LOBBY)])
    private_seeded.catch_up()
    text = private_app.test_client().get(f"/api/v1/rooms/{LOBBY}/transcript?format=html", headers=auth(tokens["compliance"])).get_data(as_text=True)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<b>mallory" not in text


def test_presence_at_and_over_a_range(client, tokens):
    analyst = auth(tokens["analyst"])
    at = client.get(f"/api/v1/rooms/{LOBBY}/presence?at={T}", headers=analyst).json
    assert sorted(o["nick"] for o in at["occupants"]) == ["alice", "bob"] and at["known"]
    assert all("jid" not in o for o in at["occupants"])
    compliance = client.get(f"/api/v1/rooms/{LOBBY}/presence?at={T}", headers=auth(tokens["compliance"])).json
    assert {o["jid"] for o in compliance["occupants"]} == {"alice@localhost/pc", "bob@localhost/phone"}
    one = client.get(f"/api/v1/rooms/{LOBBY}/presence?at={T}&limit=1", headers=analyst).json
    assert [o["nick"] for o in one["occupants"]] == ["alice"] and one["next"]
    two = client.get(f"/api/v1/rooms/{LOBBY}/presence?at={T}&limit=1&cursor={one['next']}", headers=analyst).json
    assert [o["nick"] for o in two["occupants"]] == ["bob"] and two["next"] is None
    after = client.get(f"/api/v1/rooms/{LOBBY}/presence?at=2024-05-01T12:00:45Z", headers=analyst).json
    assert [o["nick"] for o in after["occupants"]] == ["alice"]
    # The archive's last event was recorded at 12:00:51: a minute later nothing is known yet.
    later = client.get(f"/api/v1/rooms/{LOBBY}/presence?at=2024-05-01T12:01:00Z", headers=analyst).json
    assert (later["known"], later["occupants"], later["known_until"]) == (False, [], "2024-05-01T12:00:51Z")
    assert [o["nick"] for o in later["possibly_present"]] == ["alice"]
    span = "from=2024-05-01T12:00:00Z&to=2024-05-01T12:02:00Z"
    ranged = client.get(f"/api/v1/rooms/{LOBBY}/presence?{span}&buckets=2&nick=bob", headers=analyst).json
    # After 12:00:51 nothing is known: the second minute is empty and unknown, not "alice still there".
    assert [(b["peak"], b["unknown"]) for b in ranged["occupancy"]] == [(2, True), (0, True)]  # 1st: partly
    assert [(s["start"], s["end"]) for s in ranged["stays"]] == [("2024-05-01T12:00:01Z", "2024-05-01T12:00:40Z")]
    assert client.get(f"/api/v1/rooms/{LOBBY}/presence?{span}&jid=bob@localhost", headers=analyst).status_code == 400
    everyone = client.get(f"/api/v1/rooms/{LOBBY}/presence?{span}", headers=analyst).json
    assert sorted((s["nicks"][0], s["end"]) for s in everyone["stays"]) == [
        ("alice", None), ("bob", "2024-05-01T12:00:40Z"), ("eve", "2024-05-01T12:00:51Z")
    ]
    first = client.get(f"/api/v1/rooms/{LOBBY}/presence?{span}&limit=1", headers=analyst).json
    assert [s["nicks"] for s in first["stays"]] == [["alice"]] and first["next"]
    rest = client.get(f"/api/v1/rooms/{LOBBY}/presence?{span}&limit=1&cursor={first['next']}", headers=analyst).json
    assert [s["nicks"] for s in rest["stays"]] == [["bob"]] and rest["next"]
    late = client.get(f"/api/v1/rooms/{LOBBY}/presence?from=2024-05-01T12:00:30Z&to=2024-05-01T12:00:50Z", headers=analyst).json
    assert sorted(s["nicks"][0] for s in late["stays"]) == ["alice", "bob"]  # both there at the start
    assert client.get(f"/api/v1/rooms/{LOBBY}/presence", headers=analyst).status_code == 400


def test_a_presence_range_missing_one_end_names_the_missing_one(client, tokens):
    """`from` without `to` was answered "at: give at=T ... or from and to", naming a parameter not given."""
    analyst = auth(tokens["analyst"])
    for given, missing in (("from=2024-05-01T12:00:00Z", "to"), ("to=2024-05-01T12:02:00Z", "from")):
        answer = client.get(f"/api/v1/rooms/{LOBBY}/presence?{given}", headers=analyst)
        assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_parameter"
        assert answer.json["error"]["message"].startswith(f"{missing}: "), answer.json


def test_state_at_a_time_shows_the_room_as_it_was(client, tokens):
    analyst = auth(tokens["analyst"])
    before_edit = client.get(f"/api/v1/rooms/{LOBBY}/state?at=2024-05-01T12:00:20.5Z", headers=analyst).json
    assert before_edit["subject"] == "lobby subject"
    assert sorted(o["nick"] for o in before_edit["occupants"]) == ["alice", "bob"]
    assert before_edit["lines"][-1]["body"] == "typo in lobby" and "@localhost/" not in str(before_edit)
    later = client.get(f"/api/v1/rooms/{LOBBY}/state?at=2024-05-01T12:00:35Z&limit=2", headers=analyst).json
    assert len(later["lines"]) == 2 and later["lines"][0]["body"] == "fixed in lobby"


def test_metrics_report_appends_lags_and_latency(client, tokens, archive):
    client.get(f"/api/v1/rooms/{LOBBY}/transcript", headers=auth(tokens["compliance"]))
    text = client.get("/metrics", headers=auth(tokens["compliance"])).get_data(as_text=True)
    assert f"chat_archive_events_appended_total {archive.head()}" in text
    assert 'chat_archive_projection_lag_events{projection="transcripts"} 0' in text
    assert 'chat_archive_projection_lag_events{projection="presence"} 0' in text
    assert "chat_archive_index_lag_events 0" in text
    assert 'chat_archive_api_request_duration_seconds_count{endpoint="/api/v1/rooms/<room>/transcript"} 1' in text
    assert 'chat_archive_api_requests_total{endpoint="/api/v1/rooms/<room>/transcript",status="200"} 1' in text


def test_the_latency_histogram_is_cumulative_each_answer_in_every_bucket_from_its_own():
    metrics = RequestMetrics()
    for seconds in (0.0005, 0.001, 0.003, 0.003, 0.2, 20.0):  # 0.001: on a bound, which counts it
        metrics.observe("/x", 200, seconds)
    counts = dict(re.findall(r'_bucket\{endpoint="/x",le="([^"]+)"\} (\d+)', metrics.render([])))
    assert counts == {
        "0.001": "2", "0.0025": "2", "0.005": "4", "0.01": "4", "0.025": "4", "0.05": "4", "0.1": "4",
        "0.25": "5", "0.5": "5", "1.0": "5", "2.5": "5", "5.0": "5", "10.0": "5", "+Inf": "6",
    }  # fmt: skip


def test_metrics_need_a_token_even_with_anonymous_read(client):
    assert client.get("/metrics").status_code == 401  # anonymous_read is on in these tests


def test_metrics_can_be_public(archive, views, search_index, token_store, seeded_url):
    from query_api import create_app

    from .conftest import make_config

    app = create_app(make_config(seeded_url, metrics_public=True), store=archive, views=views, search=search_index, tokens=token_store)
    assert app.test_client().get("/metrics").status_code == 200


def test_metrics_read_the_lag_of_a_view_made_before_late_lines(private_seeded, token_store, tokens):
    # A scrape reads a position only: loading the view would be refused (the projections' start rebuilds it).
    from query_api import create_app
    from tests.projections.old_rules import as_made_before_late_lines

    from .conftest import make_config

    as_made_before_late_lines(private_seeded.views)
    app = create_app(make_config(private_seeded.url), store=private_seeded.store, views=private_seeded.views,
                     search=private_seeded.search, tokens=token_store)
    answer = app.test_client().get("/metrics", headers=auth(tokens["compliance"]))
    assert answer.status_code == 200
    assert 'chat_archive_projection_lag_events{projection="transcripts"} 0' in answer.get_data(as_text=True)
