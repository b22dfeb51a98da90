"""Errors are JSON `{"error": {"code", "message"}}` with a 4xx for bad input; never a stack trace."""

from __future__ import annotations

import pytest

from archive.errors import StoreError
from archive.health import Health
from query_api import create_app

from .conftest import LOBBY, auth, make_config


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        (f"/api/v1/rooms/{LOBBY}/events?bogus=1", "unknown_parameter", "bogus"),
        (f"/api/v1/rooms/{LOBBY}/events?after=-1", "invalid_parameter", "after"),
        (f"/api/v1/rooms/{LOBBY}/events?after=1&after=2", "invalid_parameter", "more than once"),
        (f"/api/v1/rooms/{LOBBY}/events?from=2024-13-01", "invalid_parameter", "ISO 8601"),
        (f"/api/v1/rooms/{LOBBY}/events?from=2024-05-02&to=2024-05-01", "invalid_parameter", "later than"),
        # An unencoded '+' is a space in a query string: the time read '2024-05-01T12:00:00 01:00', with no hint.
        (f"/api/v1/rooms/{LOBBY}/events?from=2024-05-01T12:00:00+01:00", "invalid_parameter", "as %2B"),
        (f"/api/v1/rooms/{LOBBY}/events?to=+1d", "invalid_parameter", "as %2B"),
        ("/api/v1/events?follow=maybe", "invalid_parameter", "true or false"),
        (f"/api/v1/rooms/{LOBBY}/transcript?format=pdf", "invalid_parameter", "json, html, text"),
        (f"/api/v1/rooms/{LOBBY}/transcript?cursor=not-ours", "invalid_parameter", "cursor"),
        (f"/api/v1/rooms/{LOBBY}/transcript?cursor=eyJjIjogNSwgImQiOiAiZm9yd2FyZCJ9", "invalid_parameter", "cursor"),
        (f"/api/v1/rooms/{LOBBY}/transcript?cursor=eyJjIjogIngiLCAiZCI6ICJzaWRld2F5cyJ9", "invalid_parameter", "cursor"),
        (f"/api/v1/rooms/{LOBBY}/transcript?cursor=eyJjIjogIngiLCAiZCI6ICJmb3J3YXJkIiwgInMiOiAiMjAyNC0wNS0wMVQwMDowMDowMCJ9", "invalid_parameter", "cursor"),
        (f"/api/v1/rooms/{LOBBY}/transcript?cursor=WzEsIDJd", "invalid_parameter", "cursor"),
        (f"/api/v1/rooms/{LOBBY}/transcript?day=2024-05-01&from=2024-05-01", "invalid_parameter", "either"),
        (f"/api/v1/rooms/{LOBBY}/transcript?limit=0", "invalid_parameter", "limit"),
        ("/api/v1/search?q=on:9999-12-31", "out_of_range", "out of range"),
        ("/api/v1/no-such-endpoint", "not_found", "not found"),
    ],
)
def test_bad_input_is_a_json_4xx(client, tokens, url, code, words):
    response = client.get(url, headers=auth(tokens["compliance"]))
    assert 400 <= response.status_code < 500
    assert response.mimetype == "application/json"
    assert response.json["error"]["code"] == code
    assert words in response.json["error"]["message"]


def test_wrong_method_is_405_json(client, tokens):
    response = client.post("/api/v1/events", headers=auth(tokens["compliance"]))
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_around_an_unknown_line_is_404(client, tokens):
    response = client.get(f"/api/v1/rooms/{LOBBY}/transcript?around=no-such-id", headers=auth(tokens["compliance"]))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


class FailingStore:
    """A store whose database went away (StoreError) or that hits a bug of ours (any other exception)."""

    def __init__(self, error: Exception):
        self.error = error

    def rooms(self):
        raise self.error

    def head(self):
        raise self.error

    def append_audit(self, record):
        raise self.error


def test_store_failure_is_503_and_a_bug_is_a_bare_500(token_store, tokens, seeded_url):
    config = make_config(seeded_url)
    down = create_app(config, store=FailingStore(StoreError("disk on fire at /secret/path")), tokens=token_store)
    response = down.test_client().get(f"/api/v1/rooms/{LOBBY}/events", headers=auth(tokens["compliance"]))
    assert response.status_code == 503
    assert response.json["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "5"
    assert "/secret/path" not in response.get_data(as_text=True)
    assert down.test_client().get("/healthz").status_code == 503
    buggy = create_app(config, store=FailingStore(RuntimeError("boom at line 42")), tokens=token_store)
    response = buggy.test_client().get(f"/api/v1/rooms/{LOBBY}/events", headers=auth(tokens["compliance"]))
    assert response.status_code == 500
    assert response.json == {"error": {"code": "internal", "message": "internal error"}}


@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/rooms/{LOBBY}/events?after=99999999999999999999",
        f"/api/v1/rooms/{LOBBY}/transcript?around=99999999999999999999999",
        f"/api/v1/rooms/{LOBBY}/state?at=9999-12-31T23:59:59.999999Z",
        f"/api/v1/rooms/{LOBBY}/presence?at=0001-01-01",
        f"/api/v1/rooms/{LOBBY}/transcript?day=0001-01-01",
    ],
)
def test_values_beyond_what_the_stores_hold_are_400(client, tokens, url):
    response = client.get(url, headers=auth(tokens["compliance"]))
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_parameter"


def test_healthz_reports_parts_retrying_store_errors_without_their_text(archive, views, search_index, token_store, sqlite_url):
    health = Health()
    writer = health.reporter("listener writer")
    health.reporter("search indexer")
    app = create_app(make_config(sqlite_url), store=archive, views=views, search=search_index, tokens=token_store,
                     health=health)  # fmt: skip
    ok = app.test_client().get("/healthz")
    assert (ok.status_code, ok.json) == (200, {"status": "ok", "parts": {"listener writer": {"ok": True}, "search indexer": {"ok": True}}})
    writer("could not append 3 events: connection to /secret/socket refused")
    writer("could not append 3 events: connection to /secret/socket refused")
    degraded = app.test_client().get("/healthz")
    assert degraded.status_code == 503 and degraded.json["status"] == "degraded"
    assert degraded.json["parts"]["listener writer"]["attempts"] == 2 and degraded.json["parts"]["search indexer"] == {"ok": True}
    assert "/secret/socket" not in degraded.get_data(as_text=True)
    writer(None)
    assert app.test_client().get("/healthz").status_code == 200


def test_healthz_says_which_view_is_rebuilt_and_why_and_stays_ok(private_seeded, token_store):
    """A view built by older rules is followed while up or project rebuild it (``chat_archive.bootstrap``): not a
    failure, but an operator asking the process how it is should learn that its answers come from the old view."""
    from tests.projections.old_rules import as_built_by_rules

    app = create_app(make_config(private_seeded.url), store=private_seeded.store, views=private_seeded.views,
                     search=private_seeded.search, tokens=token_store)  # fmt: skip
    assert "rebuilding" not in app.test_client().get("/healthz").json
    as_built_by_rules(private_seeded.views, "transcripts", None)
    health = app.test_client().get("/healthz")
    assert health.status_code == 200 and health.json["status"] == "ok"
    assert list(health.json["rebuilding"]) == ["transcripts"]
    assert health.json["rebuilding"]["transcripts"].startswith("the transcripts view was built by rules 1")
