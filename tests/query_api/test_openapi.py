"""The OpenAPI document validates, describes exactly the routes the app serves, and fuzzing it finds no 500."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from query_api import create_app
from query_api.openapi import document

from .conftest import LOBBY, MISSING, PUBLIC, SECRET, auth, make_config


def test_document_validates_and_is_served_openly(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    validate(response.json)
    assert response.json == document()


def test_every_route_is_described_and_every_described_path_is_routed(app):
    routed = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/", "/widget/")) or rule.rule in ("/healthz", "/metrics")  # pages are not the API
    }
    assert routed == set(document()["paths"])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.sampled_from(["forward", "backward", "2024-05-01T00:00:00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["c", "d", "s", "e", "after"]), inner, max_size=4),
    max_leaves=8,
)


def encode_cursor_like(value) -> str:
    """Any JSON, encoded the way this API's cursors are: forged cursors must be 400s too."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


ERROR_SCHEMA = document()["components"]["schemas"]["Error"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
ODD_TIMES = st.sampled_from(["2024-05-01", "2024-05-01T12:00:15Z", "-7d", "+2h", "2024-02-30", "99999-01-01", "0", "-99999999w", "9999-12-31T23:59:59.999999Z", "0001-01-01", "1899-12-31"])


def value_for(param: dict) -> st.SearchStrategy[str]:
    schema = param.get("schema", {})
    if "enum" in schema:
        return st.one_of(st.sampled_from(schema["enum"]), TEXT)
    if schema.get("type") == "integer" or param["name"] == "around":
        return st.one_of(st.integers(-5, 10**20).map(str), st.sampled_from(["9223372036854775807", "9223372036854775808", "-0", "007"]), TEXT)
    if schema.get("type") == "boolean":
        return st.sampled_from(["true", "false", "1", "yes", "maybe", ""])
    if param["name"] in ("from", "to", "at", "day"):
        return st.one_of(ODD_TIMES, TEXT)
    if param["name"] == "cursor":
        return st.one_of(TEXT, JSON.map(encode_cursor_like))
    if param["name"] == "q":
        return st.one_of(st.sampled_from(['hello', '"fixed in"', "room:lobby* OR -oops", "(", "a AND", "on:2024-05-01 is:edited", "from:alice~", "on:9999-12-31", "after:-99999999w"]), TEXT)
    return TEXT


@st.composite
def requests(draw):
    paths = {path: item for path, item in document()["paths"].items() if "get" in item}  # reads only
    path = draw(st.sampled_from(sorted(paths)))
    params = paths[path]["get"].get("parameters", [])
    room = draw(st.one_of(st.sampled_from([LOBBY, SECRET, PUBLIC, MISSING]), TEXT.filter(lambda t: t and "/" not in t and t not in (".", ".."))))
    query = {}
    for param in params:
        if param["in"] == "query" and draw(st.booleans()):
            query[param["name"]] = draw(value_for(param))
    if draw(st.integers(0, 9)) == 0:
        query[draw(TEXT.filter(bool))] = draw(TEXT)
    return path.replace("{room}", urllib.parse.quote(room, safe="@")), query, draw(st.sampled_from(["compliance", "analyst", "site", None]))


def test_fuzzing_the_documented_api_finds_no_500(archive, views, search_index, token_store, tokens, seeded_url):
    app = create_app(make_config(seeded_url, anonymous_read=True, public_rooms=(PUBLIC,)), store=archive, views=views, search=search_index, tokens=token_store)
    app.extensions["chat_archive"].stopping.set()  # follow streams end after catching up
    client = app.test_client()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(requests())
    def check(request):
        path, query, role = request
        headers = auth(tokens[role], "carol") if role else {}
        response = client.get(path, query_string=query, headers=headers)
        assert response.status_code < 500, (path, query, role, response.get_data(as_text=True))
        if response.status_code >= 400:
            jsonschema.validate(response.json, ERROR_SCHEMA)
        response.close()

    check()


def test_documented_query_parameters_are_exactly_those_accepted(client, tokens):
    """An unknown parameter's error lists what the endpoint accepts: it must match the document."""
    for path, item in document()["paths"].items():
        if not path.startswith("/api/") or "get" not in item:
            continue  # the widget's feed: test_widget_answers_match_their_documented_schema
        documented = sorted(p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query")
        if not documented:
            continue
        url = path.replace("{room}", LOBBY)
        response = client.get(url, query_string={"zz_undocumented": "1"}, headers=auth(tokens["compliance"]))
        assert response.json["error"]["code"] == "unknown_parameter", path
        accepted = response.json["error"]["message"].split("(accepted: ")[1].rstrip(")").split(", ")
        assert accepted == documented, path


def documented_schema(path: str, content_type: str = "application/json", method: str = "get") -> dict:
    """The documented schema of a 200 answer, with the components its references point into."""
    schema = document()["paths"][path][method]["responses"]["200"]["content"][content_type]["schema"]
    return {**schema, "components": document()["components"]}


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/api/v1/search", "/api/v1/search?q=hello"),
        ("/api/v1/rooms", "/api/v1/rooms"),
        ("/api/v1/rooms/{room}/transcript", f"/api/v1/rooms/{LOBBY}/transcript"),
        ("/api/v1/rooms/{room}/transcript", f"/api/v1/rooms/{LOBBY}/transcript?around=5"),
        ("/api/v1/rooms/{room}/presence", f"/api/v1/rooms/{LOBBY}/presence?at=2024-05-01T12:00:15Z"),
        ("/api/v1/rooms/{room}/state", f"/api/v1/rooms/{LOBBY}/state"),
        ("/api/v1/rooms/{room}/presence", f"/api/v1/rooms/{LOBBY}/presence?from=2024-05-01&to=2024-05-02"),
        ("/api/v1/rooms/{room}/presence", f"/api/v1/rooms/{LOBBY}/presence?from=2024-05-01&to=2024-05-02&nick=alice"),
    ],
)
def test_answers_match_their_documented_schema(client, tokens, path, url):
    response = client.get(url, headers=auth(tokens["compliance"]))
    assert response.status_code == 200
    jsonschema.validate(response.json, documented_schema(path))


def test_replay_lines_match_the_documented_schema(client, tokens):
    schema = documented_schema("/api/v1/events", "application/x-ndjson")
    lines = client.get("/api/v1/events", headers=auth(tokens["compliance"])).get_data(as_text=True).splitlines()
    for line in lines:
        jsonschema.validate(json.loads(line), schema)


def test_widget_answers_match_their_documented_schema(client, tokens):
    issued = client.post("/widget/tickets", json={"room": LOBBY}, headers=auth(tokens["site"], "carol"))
    jsonschema.validate(issued.json, documented_schema("/widget/tickets", method="post"))
    headers = {"X-Widget-Ticket": issued.json["ticket"]}
    first = client.get(f"/widget/{LOBBY}/activity", headers=headers).json
    jsonschema.validate(first, documented_schema("/widget/{room}/activity"))
    later = client.get(f"/widget/{LOBBY}/activity", query_string={"cursor": first["cursor"]}, headers=headers).json
    jsonschema.validate(later, documented_schema("/widget/{room}/activity"))
    odd = client.get(f"/widget/{LOBBY}/activity", query_string={"zz_undocumented": "1"}, headers=headers)
    assert odd.status_code == 400 and odd.json["error"]["code"] == "unknown_parameter"


def test_the_document_states_the_real_constraints():
    search = {p["name"]: p for p in document()["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert search["q"]["required"] and search["q"]["schema"]["maxLength"] == 4096
    assert search["limit"]["schema"]["maximum"] == 500 and search["cursor"]["schema"]["maxLength"] == 4096
    transcript = document()["paths"]["/api/v1/rooms/{room}/transcript"]["get"]
    assert "`day` or `from`/`to`, not both" in transcript["description"]
    assert "`q` or `room` is required" in document()["paths"]["/api/v1/export"]["get"]["description"]
