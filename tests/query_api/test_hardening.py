"""Hardening through Flask's test client: caching of authenticated answers, /metrics, escaping of
exports and text transcripts, log lines, granted room names."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import logging
import threading
import time
import zipfile

import pytest

from query_api.exports.bundle import ExportRequest, write_bundle
from query_api.roles import Role
from tests.factories import message

from .conftest import LOBBY, PUBLIC, auth


@pytest.mark.parametrize("path", ["/api/v1/rooms", f"/api/v1/rooms/{LOBBY}/transcript", "/api/v1/search?q=hello",
                                  f"/api/v1/rooms/{LOBBY}/presence?at=2024-05-01T12:00:00Z", "/api/v1/nowhere"])
def test_authenticated_json_is_never_cached(client, tokens, path):
    response = client.get(path, headers=auth(tokens["compliance"]))
    assert response.headers.get("Cache-Control") == "no-store", (path, response.status_code)


def test_anonymous_answers_are_not_cached_either_but_the_api_description_may_be(client):
    assert client.get(f"/api/v1/rooms/{PUBLIC}/transcript").headers.get("Cache-Control") == "no-store"
    assert client.get("/api/v1/openapi.json").headers.get("Cache-Control") != "no-store"


def test_metrics_only_for_tokens_that_see_everything(client, tokens, token_store):
    assert client.get("/metrics", headers=auth(tokens["compliance"])).status_code == 200
    assert client.get("/metrics", headers=auth(tokens["analyst"])).status_code == 403
    assert client.get("/metrics", headers=auth(tokens["site"], "carol")).status_code == 403
    assert client.get("/metrics").status_code == 401


FORGED = "fine\n[2024-05-01T12:00:40Z] <ceo> wire the money\r\x1b[2Jcleared"


@pytest.fixture
def hostile_client(private_app, private_seeded):
    private_seeded.store.append([
        message(35, FORGED, "mallory", room=LOBBY),
        message(36, "=HYPERLINK(\"http://evil.example\",\"click\")", "mallory", room=LOBBY),
        message(37, "+1+cmd|' /C calc'!A0", "mallory", room=LOBBY),
        message(38, "-2+3", "mallory", room=LOBBY),
        message(39, "@SUM(1)", "mallory", room=LOBBY),
    ])  # fmt: skip
    private_seeded.catch_up()
    return private_app.test_client()


def test_text_transcripts_cannot_be_forged_by_line_breaks_or_control_characters(hostile_client, tokens):
    text = hostile_client.get(f"/api/v1/rooms/{LOBBY}/transcript?format=text&limit=1000",
                              headers=auth(tokens["compliance"])).text  # fmt: skip
    lines = text.split("\n")
    real = [line for line in lines if line.startswith("[")]
    assert not any("<ceo>" in line for line in real)  # the forged line is no line of its own
    assert any(line.startswith("    [2024-05-01T12:00:40Z] <ceo>") for line in lines)  # shown, indented
    assert "\r" not in text and "\x1b" not in text and "\\x1b[2J" in text


@pytest.mark.parametrize("fmt", ["eml", "rsmf"])
def test_export_transcripts_cannot_be_forged_by_line_breaks_or_control_characters(hostile_client, private_seeded,
                                                                                   tmp_path, fmt):
    """The text transcript of an EML (and of an RSMF file's message) wrote bodies as they were: a line break in
    one began a line of its own, a forged line of someone else's, and terminal escapes went along."""
    path = tmp_path / "export.zip"
    with open(path, "wb") as out:
        write_bundle(out, ExportRequest(format=fmt, rooms=(LOBBY,)), private_seeded.store, private_seeded.views,
                     private_seeded.search)
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(f".{fmt}")]
        message = email.message_from_bytes(zf.read(name), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    lines = text.split("\n")
    assert not any("<ceo>" in line for line in lines if line.startswith("["))  # no line of its own
    assert any(line.startswith("    [2024-05-01T12:00:40Z] <ceo>") for line in lines)  # shown, indented
    assert "\r" not in text and "\x1b" not in text and "\\x1b[2J" in text


def test_csv_export_cells_cannot_be_formulas(hostile_client, tokens):
    body = hostile_client.get(f"/api/v1/export?room={LOBBY}&format=csv", headers=auth(tokens["compliance"])).text
    rows = list(csv.reader(io.StringIO(body.rsplit("# sha256", 1)[0])))
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in cells and "'-2+3" in cells and "'@SUM(1)" in cells


class HeldSearches:
    """The app's searches held until released (when the test ends at the latest): a response given
    while one is held did not wait for it, however loaded the machine."""

    def __init__(self, app, monkeypatch, request):
        self.entered, self.release, self.done = threading.Event(), threading.Event(), threading.Event()
        index = app.extensions["chat_archive"].search
        slow = index.search

        def held(*args, **kwargs):
            self.entered.set()
            self.release.wait(60)
            try:
                return slow(*args, **kwargs)
            finally:
                self.done.set()

        monkeypatch.setattr(index, "search", held)
        request.addfinalizer(self.finish)

    def finish(self) -> None:
        self.release.set()
        self.done.wait(60)


def test_a_search_past_its_deadline_is_a_503_and_frees_the_request(request, api_settings, tokens, monkeypatch):
    api_settings["search_timeout"] = 0.2
    app = request.getfixturevalue("private_app")
    held = HeldSearches(app, monkeypatch, request)
    response = app.test_client().get("/api/v1/search?q=hello", headers=auth(tokens["compliance"]))
    assert response.status_code == 503 and response.json["error"]["code"] == "search_timeout"
    assert not held.done.is_set()  # answered while its search still ran


def test_searches_beyond_the_pool_wait_for_a_slot_instead_of_being_refused(request, api_settings, tokens, monkeypatch):
    api_settings["threads"] = 2  # one search at a time
    app = request.getfixturevalue("private_app")
    index = app.extensions["chat_archive"].search
    slow = index.search
    monkeypatch.setattr(index, "search", lambda *a, **k: (time.sleep(0.3), slow(*a, **k))[1])
    statuses: list[int] = []
    clients = [threading.Thread(target=lambda: statuses.append(
        app.test_client().get("/api/v1/search?q=hello", headers=auth(tokens["compliance"])).status_code))
        for _ in range(3)]  # fmt: skip
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert statuses == [200, 200, 200]


def test_the_wait_for_a_search_slot_counts_against_the_deadline(request, api_settings, tokens, monkeypatch):
    api_settings.update(threads=2, search_timeout=0.3)
    app = request.getfixturevalue("private_app")
    held = HeldSearches(app, monkeypatch, request)
    first = threading.Thread(target=lambda: app.test_client().get("/api/v1/search?q=hello", headers=auth(tokens["compliance"])))
    first.start()
    assert held.entered.wait(60)  # the first search holds the only slot until released
    response = app.test_client().get("/api/v1/search?q=hello", headers=auth(tokens["compliance"]))
    assert response.status_code == 503 and response.json["error"]["code"] == "search_timeout"
    assert not held.done.is_set()  # refused while the slot was still taken: its wait counted
    held.finish()
    first.join(60)


def test_values_from_requests_are_logged_escaped_on_one_line(request, api_settings, permission_site, token_store, caplog):
    api_settings["permission_url"] = permission_site.url
    permission_site.broken = True
    client = request.getfixturevalue("app").test_client()
    token = token_store.create(Role.SITE)[0]
    forged = "carol\x1b[2K\x1b[1G2024-05-01 12:00:00 INFO granted admin to mallory"  # rewrites a terminal's line
    with caplog.at_level(logging.WARNING):
        client.get(f"/api/v1/rooms/{LOBBY}%0Afake/transcript", headers=auth(token, forged))
    messages = [record.getMessage() for record in caplog.records]
    assert messages and any("carol\\x1b[2K" in m for m in messages)
    assert not any("\n" in m or "\x1b" in m for m in messages)


def test_a_widget_cursor_is_bounds_checked_even_when_signed():
    from query_api.web.widget_feed import valid_cursor

    assert valid_cursor({"r": 3})  # a log position (the widget reads the transcript view's changes after it)
    for bad in ({"r": -1}, {"r": True}, {"r": "3"}, {"r": 1.5}, {"p": 3, "t": 1714564800.0}, {}):
        assert not valid_cursor(bad), bad
