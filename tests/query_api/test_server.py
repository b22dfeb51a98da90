"""Every endpoint through a real server: `chat-archive serve` in its own process on loopback,
and the in-process server that `chat-archive up` starts (api_root.start_api)."""

from __future__ import annotations

import gc
import http.client
import json
import signal
import threading
import time
import urllib.error
import urllib.request
import weakref

import pytest

from archive.application import open_event_store
from chat_archive import api_root
from chat_archive.api_root import open_tokens, start_api
from chat_archive.bootstrap import open_search_index, open_views
from query_api.roles import Role
from tests.factories import message

from .conftest import LOBBY, PUBLIC, SECRET, archive_url
from .serving import start_serve

T = "2024-05-01T12:00:15Z"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    """A seeded archive with caught-up views and index, served by `chat-archive serve --port 0`."""
    base = tmp_path_factory.mktemp(f"served-{request.param}")
    with archive_url(request.param, base) as url:
        yield from _served(base, url)


def _served(base, url: str):
    served = start_serve(base, store_url=url)
    store = open_event_store(url)
    yield {"url": served.url, "tokens": served.tokens, "store": store, "process": served.process, "config": served.config}
    served.stop()
    store.close()


def get(url: str, token: str | None = None, user: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if user:
        request.add_header("X-Chat-Archive-User", user)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get_content_type(), e.read()


ENDPOINTS = [
    ("compliance", "/api/v1/search?q=hello&sort=newest", "application/json"),
    ("site", "/api/v1/search?q=fixed", "application/json"),
    ("compliance", "/api/v1/rooms", "application/json"),
    ("site", f"/api/v1/rooms/{LOBBY}/transcript", "application/json"),
    ("site", f"/api/v1/rooms/{LOBBY}/transcript?format=html", "text/html"),
    ("site", f"/api/v1/rooms/{LOBBY}/transcript?format=text&day=2024-05-01", "text/plain"),
    ("analyst", f"/api/v1/rooms/{LOBBY}/presence?at={T}", "application/json"),
    ("analyst", f"/api/v1/rooms/{LOBBY}/presence?from=2024-05-01&to=2024-05-02&nick=bob", "application/json"),
    ("analyst", f"/api/v1/rooms/{LOBBY}/state?at={T}", "application/json"),
    ("analyst", f"/api/v1/rooms/{LOBBY}/events", "application/x-ndjson"),
    ("compliance", "/api/v1/events?limit=3", "application/x-ndjson"),
    ("compliance", f"/api/v1/export?room={SECRET}&format=csv", "text/csv"),
    ("compliance", "/api/v1/export?q=oops", "application/x-ndjson"),
    (None, "/api/v1/openapi.json", "application/json"),
    (None, "/healthz", "application/json"),
    ("compliance", "/metrics", "text/plain"),
]


@pytest.mark.parametrize(("role", "path", "content_type"), ENDPOINTS)
def test_every_endpoint_over_http(served, role, path, content_type):
    token = served["tokens"][role] if role else None
    status, received_type, body = get(served["url"] + path, token, "carol" if role == "site" else None)
    assert (status, received_type) == (200, content_type), body[:500]
    assert body


def test_errors_over_http(served):
    tokens = served["tokens"]
    assert get(served["url"] + "/api/v1/events", "cat_forged")[0] == 401
    assert get(served["url"] + "/api/v1/events")[0] == 401  # anonymous read is on, replay needs a token
    assert get(served["url"] + f"/api/v1/rooms/{SECRET}/transcript", tokens["site"], "carol")[0] == 404
    assert get(served["url"] + "/api/v1/export?room=x", tokens["site"], "carol")[0] == 403
    status, _, body = get(served["url"] + "/api/v1/search?q=%22unclosed", tokens["compliance"])
    error = json.loads(body)["error"]
    assert status == 400 and error["code"] == "invalid_query" and error["position"] == 0


def test_search_finds_and_transcript_opens_around_the_hit(served):
    tokens = served["tokens"]
    _, _, body = get(served["url"] + "/api/v1/search?q=fixed", tokens["site"], "carol")
    result = json.loads(body)
    assert result["total"] == 2 and {h["room"] for h in result["hits"]} == {LOBBY, PUBLIC}
    hit = next(h for h in result["hits"] if h["room"] == LOBBY)
    assert "<mark>fixed</mark>" in hit["snippet"] and "jid" not in hit
    _, _, body = get(served["url"] + f"/api/v1/rooms/{LOBBY}/transcript?around={hit['position']}&limit=3", tokens["site"], "carol")
    page = json.loads(body)
    assert page["target"] == hit["position"] and len(page["lines"]) == 3
    assert page["lines"][1]["body"] == "fixed in lobby" and "versions" not in page["lines"][1]


def open_follow(served, after: int = 0, role: str = "compliance") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    host, port = served["url"].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {served['tokens'][role]}"}
    connection.request("GET", f"/api/v1/events?follow=true&after={after}", headers=headers)
    return connection, connection.getresponse()


def open_follow_when_free(served, after: int = 0, role: str = "compliance"):
    """A follow stream, as soon as one is free (streams of closed clients are freed at their next heartbeat)."""
    deadline = time.monotonic() + 10
    while True:
        connection, response = open_follow(served, after, role)
        if response.status == 200 or time.monotonic() > deadline:
            return connection, response
        response.close()
        connection.close()
        time.sleep(0.2)


def test_head_of_a_follow_stream_ends_at_once(served):
    host, port = served["url"].removeprefix("http://").split(":")
    # Werkzeug answers HEAD without running the body: the stream never starts and its slot comes back.
    for _ in range(10):  # more than the 8 follow streams there are
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("HEAD", "/api/v1/events?follow=true", headers={"Authorization": f"Bearer {served['tokens']['compliance']}"})
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b""
        connection.close()


def test_follow_streams_of_clients_that_went_away_are_freed(served):
    # after=0: the log so far is sent at once, so each answer starts without waiting for a heartbeat.
    # [api] threads = 16: 8 streams at once, 4 per client ([api] streams_per_client)
    streams = [open_follow(served, role=role) for role in ("compliance", "analyst") for _ in range(4)]
    assert [response.status for _, response in streams] == [200] * 8
    tokens = open_tokens(served["config"])
    served["tokens"]["third client"] = tokens.create(Role.COMPLIANCE)[0]
    tokens.close()
    connection, refused = open_follow(served, role="third client")
    assert refused.status == 503
    connection.close()
    for connection, response in streams:
        response.close()
        connection.close()
    connection, response = open_follow_when_free(served)
    assert response.status == 200
    response.close()
    connection.close()


def test_follow_over_http_then_sigterm_ends_the_server(served):
    connection, response = open_follow_when_free(served, after=served["store"].head(), role="analyst")
    assert response.status == 200
    threading.Timer(0.3, lambda: served["store"].append([message(9000, "over the wire", room=LOBBY)])).start()
    lines = []
    while not any(lines):
        lines.append(response.readline().strip())
    assert json.loads(lines[-1])["event"]["body"] == "over the wire"
    process = served["process"]
    process.send_signal(signal.SIGTERM)  # with the follow stream still open
    assert process.wait(timeout=15) == 0
    connection.close()


def test_serve_workers_answer_alike_and_sigterm_ends_their_follow_streams(tmp_path):
    served = start_serve(tmp_path, workers=2)
    try:
        for _ in range(6):  # each lands on either worker
            status, _, body = get(served.url + f"/api/v1/rooms/{LOBBY}/transcript?format=text", served.tokens["site"], "carol")
            assert status == 200 and b"hello from lobby" in body
        follow = {"url": served.url, "tokens": served.tokens}
        connection, response = open_follow_when_free(follow, role="analyst")
        assert response.status == 200 and response.readline()
        served.process.send_signal(signal.SIGTERM)  # the stream still open: the worker must end it, not wait it out
        # Ended by the worker, the stream closes cleanly (its last chunk sent); a worker killed at the
        # end of the graceful period would cut it off (IncompleteRead) instead.
        deadline = time.monotonic() + 30
        while response.readline():  # heartbeats until the end
            assert time.monotonic() < deadline, "the follow stream was never ended"
        assert served.process.wait(timeout=30) == 0
        connection.close()
    finally:
        served.stop()


def test_in_process_server_for_up(served):
    config, store = served["config"], served["store"]
    stop = threading.Event()
    with open_views(config, store) as views:
        server = start_api(config, store, views, open_search_index(config), stop, host="127.0.0.1", port=0)
        status, _, body = get(server.url + f"/api/v1/rooms/{LOBBY}/transcript?format=text", served["tokens"]["site"], "carol")
        assert status == 200 and b"hello from lobby" in body
        assert server.is_alive()
        stop.set()
        server.join(15)
        assert not server.is_alive()
        with pytest.raises(OSError):
            urllib.request.urlopen(server.url + "/healthz", timeout=2)


class _Cycle:
    def __init__(self):
        self.me = self


def _frozen_at_start(build):
    """``build()`` makes a serving process's app: cyclic garbage made before it is collected, and what the
    process holds is frozen (out of the collector's sight) before it answers."""
    garbage = weakref.ref(_Cycle())
    gc.unfreeze()
    try:
        built = build()
        assert garbage() is None and gc.get_freeze_count() > 0
        return built
    finally:
        gc.unfreeze()


def test_serve_freezes_its_startup_heap_before_answering(served, monkeypatch):
    """`serve --workers`: each worker builds its app, then freezes its heap (full collections paused every
    request 100 ms and more); single-process `serve` likewise (`up` does not: see freeze_startup_heap)."""
    built = {}

    def serve_workers(make_app, *args, **kwargs) -> int:  # the app a forked worker would build
        built["make_app"] = make_app
        return 0

    monkeypatch.setattr(api_root, "serve_workers", serve_workers)
    api_root.serve_api_workers(served["config"], 1, on_ready=lambda url: None)
    stop = threading.Event()
    try:
        app = _frozen_at_start(lambda: built["make_app"](stop))
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        stop.set()
    config, store = served["config"], served["store"]
    with open_views(config, store) as views:
        server = _frozen_at_start(lambda: start_api(config, store, views, open_search_index(config), stop=None,
                                                    host="127.0.0.1", port=0, freeze_heap=True))
        try:
            assert urllib.request.urlopen(server.url + "/healthz", timeout=10).status == 200
        finally:
            server.stop()
            server.join(15)
