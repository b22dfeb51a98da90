"""Hostile requests against a real `chat-archive serve` process on each store: each is refused with a
4xx, and the server is still healthy afterwards (the corpus: hostile_corpus.py)."""

from __future__ import annotations

import base64
import http.client
import json
import time
import zlib

import msgspec
import pytest

from .conftest import archive_url
from .hostile_corpus import CORPUS, NUL_CORPUS, Hostile
from .serving import start_serve


@pytest.fixture(scope="module")
def served(store_kind, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"hostile-{store_kind}")
    with archive_url(store_kind, base) as url:
        served = start_serve(base, store_url=url)
        yield served
        served.stop()


def forged_search_cursor(q: str, sort: str = "relevance", *, ts: int = 0, key: int = 0, offset: int = 0) -> str:
    """A cursor as anyone could compute it before cursors were signed: crc32 of sort and query."""
    check = zlib.crc32(f"{sort}\x00{q}".encode())
    raw = msgspec.msgpack.encode([check, ts, key, offset])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_forged_search_cursor_with_a_huge_offset_is_a_400_not_a_dead_server(served):
    cursor = forged_search_cursor("hello", offset=2**32)
    status, _, body = served.request("GET", f"/api/v1/search?q=hello&cursor={cursor}")
    assert served.process.poll() is None, "the server process died"
    assert status == 400, body
    assert json.loads(body)["error"]["code"] in ("invalid_query", "invalid_parameter")
    assert served.healthy()


def test_a_cursor_of_another_list_is_refused(served):
    status, _, body = served.request("GET", "/api/v1/rooms?limit=1", token="compliance")
    rooms_cursor = json.loads(body)["next"]
    assert status == 200 and rooms_cursor
    status, _, body = served.request("GET", f"/api/v1/search?q=hello&cursor={rooms_cursor}", token="compliance")
    assert status == 400, body


def test_an_empty_q_finds_everything_in_scope_as_the_readme_says(served):
    status, _, body = served.request("GET", "/api/v1/search?q=", token="site", user="carol")
    assert status == 200, body
    rooms = {hit["room"] for hit in json.loads(body)["hits"]}
    assert rooms and rooms <= {"lobby@conference.localhost", "public@conference.localhost"}
    assert served.request("GET", "/api/v1/search", token="site", user="carol")[0] == 400


@pytest.mark.parametrize("q", ["%01", "!!!", "%E2%9C%85", "-%2B%2B"], ids=["control", "punctuation", "emoji", "not ++"])
def test_a_q_with_no_word_to_search_for_is_a_400_not_everything(served, q):
    """Only an empty q means everything: a q whose text analyses to no word (a control character, punctuation,
    symbols) found every message in scope, as if the search had matched. (A NUL is refused before: NUL_CORPUS.)"""
    status, _, body = served.request("GET", f"/api/v1/search?q={q}", token="site", user="carol")
    assert status == 400 and "no word to search for" in json.loads(body)["error"]["message"], body


# Every POST endpoint (and one that takes none).
POSTS = ["/widget/tickets", "/signin", "/signout", "/exports", "/api/v1/exports", "/api/v1/holds",
         "/api/v1/holds/h1/release", "/api/v1/search?q=x"]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("size", [200 * 1024 * 1024, 64 * 1024 + 1])
def test_a_big_body_is_a_413_before_it_is_read(served, path, size):
    """Refused by the server before the body is read, in the API's JSON error shape (as the README promises),
    not the server's text/plain page."""
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(size))  # announced, never sent
        connection.endheaders(b'{"room": "')
        response = connection.getresponse()
        body = response.read()
        assert response.status == 413, body[:200]
        assert response.getheader("Content-Type") == "application/json", body[:200]
        assert json.loads(body) == {"error": {"code": "too_large",
                                              "message": "the request body is larger than 65536 bytes"}}
    finally:
        connection.close()
    assert served.healthy()


def test_a_body_of_exactly_the_limit_is_read(served):
    """64 KiB is allowed, 64 KiB + 1 is not: the server and the app draw the line at the same byte."""
    body = b'{"room": "' + b"x" * (64 * 1024 - 12) + b'"}'
    assert len(body) == 64 * 1024
    status, _, answer = served.request("POST", "/widget/tickets", body=body, headers={"Content-Type": "application/json"})
    assert status in (400, 401), answer[:200]  # read and judged by the app (no token), not refused for its size
    assert served.healthy()


def test_a_big_chunked_body_is_refused_too(served):
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    chunks = (b"x" * 65536 for _ in range(200))  # 12.5 MiB, no Content-Length
    try:
        connection.request("POST", "/widget/tickets", body=chunks, headers={"Content-Type": "application/json"},
                           encode_chunked=True)  # fmt: skip
        response = connection.getresponse()
        status = response.status
        assert json.loads(response.read())["error"]["code"] == "too_large"
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server hung up on it; what matters is that it is still well
    finally:
        connection.close()
    assert status == 413
    assert served.healthy()


@pytest.mark.parametrize("hostile", CORPUS, ids=[h.name for h in CORPUS])
def test_the_corpus_of_hostile_requests_gets_4xx_answers(served, hostile: Hostile):
    started = time.monotonic()
    status, headers, body = served.request(
        hostile.method, hostile.path, token=hostile.caller, headers=hostile.headers, body=hostile.body,
        user="carol" if hostile.caller == "site" and "X-Chat-Archive-User" not in (hostile.headers or {}) else None,
    )  # fmt: skip
    assert status in hostile.expected, (status, body[:300])
    assert time.monotonic() - started < 10, "a hostile request took a thread for long"
    assert "X-Injected" not in headers and "evil.example" not in headers.get("Location", "")
    if status >= 400 and headers.get_content_type() == "application/json":
        assert set(json.loads(body)["error"]) >= {"code", "message"}
    assert served.process.poll() is None


@pytest.mark.parametrize("hostile", [h for h in NUL_CORPUS if h.path.startswith("/api/")],
                         ids=[h.name for h in NUL_CORPUS if h.path.startswith("/api/")])
def test_a_nul_in_a_text_parameter_is_a_400_naming_it_on_both_stores(served, hostile: Hostile):
    parameter = hostile.name.removeprefix("NUL in ").split(",")[0]
    status, _, body = served.request(hostile.method, hostile.path, token=hostile.caller)
    assert status == 400, body[:300]
    assert json.loads(body)["error"] == {"code": "invalid_parameter", "message": f"{parameter}: holds a NUL character"}


def test_after_the_corpus_the_server_is_healthy_and_logged_no_crash(served):
    # Runs after the corpus (pytest keeps the file's order); on its own it checks a fresh server.
    assert served.healthy()
    assert served.request("GET", "/api/v1/search?q=hello", token="compliance")[0] == 200
    assert "Traceback" not in served.log() and "internal error" not in served.log()
