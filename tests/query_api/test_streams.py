"""Streamed answers (replay, export, follow) against a real `chat-archive serve`: headers at once,
revocation ends a follow stream, a few streams per client, and a client that never reads pins
neither a thread nor memory for long."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from chat_archive.api_root import open_tokens
from query_api.roles import Role
from tests.factories import message

from .conftest import LOBBY
from .serving import start_serve, wait_for

STALL_SECONDS = 4


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # ~14 MB of replay: more than the kernel's socket buffers and waitress' output buffer hold.
    bulk = [[message(1000 + i + j / 1000, "x" * 200 + f" bulk {i} {j}", room=LOBBY) for j in range(1000)] for i in range(40)]
    served = start_serve(
        tmp_path_factory.mktemp("streams"),
        # One request at a time: every test here also shows that open streams do not hold that turn.
        f"threads = 12\nactive_requests = 1\nstreams_per_client = 2\nstalled_client_seconds = {STALL_SECONDS}\n"
        "token_cache_seconds = 0.2\n",
        heartbeat=30,
        more_events=bulk,
    )
    yield served
    served.stop()


def fresh_token(served, role: Role = Role.COMPLIANCE, rooms=()) -> str:
    """A token of the test's own, so tests do not share stream slots (a stream whose client went away holds
    its slot until the server sees that, and streams of a client that stops reading until it is cut off)."""
    tokens = open_tokens(served.config)
    try:
        return tokens.create(role, rooms)[0]
    finally:
        tokens.close()


def connect(served, path: str, token: str = "compliance", *, read_buffer: int | None = None):
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    if read_buffer is not None:
        connection.sock = socket.create_connection((host, int(port)), timeout=10)
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, read_buffer)
    connection.request("GET", path, headers={"Authorization": f"Bearer {served.tokens.get(token, token)}"})
    return connection


def test_a_follow_stream_sends_its_headers_at_once(served):
    started = time.monotonic()
    connection = connect(served, "/api/v1/events?follow=true&after=999999999", fresh_token(served))
    try:
        response = connection.getresponse()  # times out (10 s) if the headers wait for the 30 s heartbeat
        assert response.status == 200 and time.monotonic() - started < 10
    finally:
        connection.close()


def test_open_streams_do_not_hold_the_turn_of_other_requests(served):
    """``active_requests = 1``: the turn is the app's call, a stream's body is written after it."""
    stream = connect(served, "/api/v1/events?follow=true&after=999999999", fresh_token(served))
    try:
        assert stream.getresponse().status == 200
        search = connect(served, "/api/v1/search?q=bulk&limit=5")
        response = search.getresponse()  # times out (10 s) if a stream held the one turn
        assert response.status == 200 and response.read()
        search.close()
    finally:
        stream.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_revoked_token_ends_its_follow_stream(served):
    tokens = open_tokens(served.config)
    token, info = tokens.create(Role.COMPLIANCE)
    connection = connect(served, "/api/v1/events?follow=true&after=999999999", token)
    try:
        response = connection.getresponse()
        assert response.status == 200
        tokens.revoke(info.id)  # in this process: the server learns of it through its token cache
        response.read()  # the stream ends (heartbeat 30 s, socket timeout 10 s: it must end before)
    finally:
        connection.close()
        tokens.close()


def test_one_client_has_a_few_streams_at_most(served):
    path = "/api/v1/events?follow=true&after=999999999"
    analyst = fresh_token(served, Role.ANALYST, (LOBBY,))
    first, second = connect(served, path, analyst), connect(served, path, analyst)
    try:
        assert first.getresponse().status == 200 and second.getresponse().status == 200
        status, _, body = served.request("GET", path, token=analyst)
        assert status == 429, body
        assert served.request("GET", "/api/v1/rooms", token=analyst)[0] == 200
    finally:
        first.close()
        second.close()


def test_a_follow_stream_whose_client_went_away_frees_its_slot_at_once_and_the_429_says_what_it_counts(served):
    """New-user walk, MEDIUM 9: follow streams whose clients were killed kept their token out of replays for
    two or three heartbeats (30 s here), answered "already has 2 streams open" though none was."""
    path = "/api/v1/events?follow=true&after=999999999"
    token = fresh_token(served)
    first, second = connect(served, path, token), connect(served, path, token)
    try:
        assert first.getresponse().status == 200 and second.getresponse().status == 200
        status, headers, body = served.request("GET", "/api/v1/events?limit=1", token=token)
        # Heartbeat 30 s: a closed client's end is seen at the latest at its stream's second heartbeat.
        assert status == 429 and headers["Retry-After"] == "61", body
        assert b"2 streams open or closed in the last 61 s without their end being seen; retry after 61 s" in body
        first.close()  # the client goes away mid-stream, between heartbeats
        assert wait_for(lambda: served.request("GET", "/api/v1/events?limit=1", token=token)[0] == 200, 5)
    finally:
        first.close()
        second.close()


def test_clients_that_never_read_are_cut_off_and_hold_no_thread_or_memory(served):
    before = rss_kib(served.process.pid)
    token = fresh_token(served)
    stalled = [connect(served, "/api/v1/events", token, read_buffer=4096) for _ in range(2)]
    try:
        responses = [connection.getresponse() for connection in stalled]  # headers only; no body read
        assert [r.status for r in responses] == [200, 200]
        assert served.healthy()  # half the threads at most are streams
        # The slots come back once the server gives up on the stalled clients.
        assert served.request("GET", "/api/v1/events?limit=1", token=token)[0] == 429  # both of its slots
        assert wait_for(lambda: served.request("GET", "/api/v1/events?limit=1", token=token)[0] == 200, 30)
        status, _, body = served.request("GET", "/api/v1/events", token=token, timeout=60)
        assert status == 200 and body.count(b"\n") > 40_000
        assert rss_kib(served.process.pid) - before < 64 * 1024
    finally:
        for connection in stalled:
            connection.close()
    assert served.healthy()


@pytest.fixture(scope="module")
def served_by_workers(tmp_path_factory):
    """The same archive served by `serve --workers 2` (gunicorn's threaded workers)."""
    bulk = [[message(1000 + i + j / 1000, "x" * 200 + f" bulk {i} {j}", room=LOBBY) for j in range(1000)] for i in range(40)]
    served = start_serve(
        tmp_path_factory.mktemp("streams-workers"),
        f"threads = 4\nstalled_client_seconds = {STALL_SECONDS}\n", heartbeat=30, more_events=bulk,
        workers=2,
    )  # fmt: skip
    yield served
    served.stop()


@pytest.mark.parametrize("server", ["served", "served_by_workers"])
def test_a_client_that_stops_reading_is_cut_off_by_either_server(request, server):
    served = request.getfixturevalue(server)
    # A default receive buffer: the kernels hold a few MB of the ~18 MB replay while the client
    # reads nothing, and the client drains them fast once it reads again.
    connection = connect(served, "/api/v1/events", fresh_token(served))
    try:
        response = connection.getresponse()
        assert response.status == 200
        time.sleep(STALL_SECONDS + 3)  # reads nothing meanwhile
        received = b""
        try:
            while chunk := response.read(1 << 20):
                received += chunk
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as e:
            received += getattr(e, "partial", b"")
        assert received.count(b"\n") < 40_000, "the whole replay came through: the stalled client was never cut off"
    finally:
        connection.close()
    assert served.healthy()
