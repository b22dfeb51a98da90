"""A permission site that misbehaves, served by a real socket server speaking broken HTTP: whatever it does, its
rooms are denied (never a 500), and a site that stalls or trickles holds no thread past the deadline."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse

import pytest

from query_api.access import PermissionCallback
from query_api.roles import Role

from .conftest import LOBBY, auth, make_config

# What the site sends back, per behaviour (the ones the HTTP client raises other than OSError or ValueError for).
BROKEN = {
    "chunked answer cut short": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n{\"allowed\": [",
    "not an HTTP status line": b"HELLO WORLD\r\n\r\n",
    "header line of 70 KB": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    "JSON nested 100,000 deep": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                                + b"[" * 100_000,
}  # fmt: skip


class MisbehavingSite:
    """A TCP server answering each connection as ``behaviour`` says: one of ``BROKEN``, "ok" (every room asked
    allowed) or "trickle" (an answer's headers, a byte every 0.1 s, without end). ``held`` counts the connections
    it is still trickling to, until the caller goes away."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.held = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/permission"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                head += chunk
            behaviour = self.behaviour
            if behaviour in BROKEN:
                connection.sendall(BROKEN[behaviour])
            elif behaviour == "ok":
                query = urllib.parse.urlparse(head.split(b" ")[1].decode()).query
                body = json.dumps({"allowed": [v for k, v in urllib.parse.parse_qsl(query) if k == "room"]}).encode()
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                self._trickle(connection)

    def _trickle(self, connection: socket.socket) -> None:
        """Until the caller goes away (its end shut or closed)."""
        with self._lock:
            self.held += 1
        try:
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            connection.settimeout(0.1)
            while True:
                try:
                    if not connection.recv(1):
                        return
                except TimeoutError:
                    connection.sendall(b"a")
        except OSError:
            return
        finally:
            with self._lock:
                self.held -= 1

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def site():
    site = MisbehavingSite("ok")
    yield site
    site.close()


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.mark.parametrize("behaviour", list(BROKEN))
def test_a_broken_answer_denies_and_is_asked_again(site, behaviour):
    """http.client's IncompleteRead, BadStatusLine and LineTooLong are not OSErrors, nor json's RecursionError a
    ValueError: they escaped the call and the request waiting for it re-raised them, a 500 for every site user."""
    site.behaviour = behaviour
    callback = PermissionCallback(site.url, timeout=5, cache_seconds=60)
    assert callback.allowed_rooms("carol", [LOBBY]) == []
    site.behaviour = "ok"
    assert callback.allowed_rooms("carol", [LOBBY]) == [LOBBY]  # the failure was not cached


def test_a_site_that_trickles_its_answer_holds_no_thread_past_the_deadline(site):
    """A socket's timeout bounds each wait for bytes: a site sending a byte every 0.1 s held the call's thread for
    as long as it went on."""
    site.behaviour = "trickle"
    callback = PermissionCallback(site.url, timeout=0.5, cache_seconds=60)
    started = time.monotonic()
    assert callback.allowed_rooms("carol", [LOBBY]) == []
    assert time.monotonic() - started < 2
    assert wait_until(lambda: site.held == 0, 3), "the call went on after its deadline"


def test_calls_given_up_on_do_not_keep_denying_once_the_site_recovers(site):
    """A request about many rooms asks in many calls; given up on at the deadline, they were left to run (and the
    queued ones to start) in the pool every request shares: once the site answered again, the next ask still
    waited behind them (here for ever: each call the site trickles an answer to holds its thread), and was denied
    too."""
    site.behaviour = "trickle"
    rooms = [f"project-room-{i:04}@conference.localhost" for i in range(3000)]  # some 30 calls, 8 at a time
    callback = PermissionCallback(site.url, timeout=0.5, cache_seconds=60)
    assert callback.allowed_rooms("carol", rooms) == []
    site.behaviour = "ok"
    assert callback.allowed_rooms("carol", [LOBBY]) == [LOBBY]
    assert wait_until(lambda: site.held == 0, 3)


def test_a_site_user_request_with_a_broken_site_is_a_404_not_a_500(site, archive, token_store, seeded_url):
    from query_api import create_app

    site.behaviour = "not an HTTP status line"
    config = make_config(seeded_url, permission_url=site.url)
    client = create_app(config, store=archive, tokens=token_store).test_client()
    response = client.get(f"/api/v1/rooms/{LOBBY}/transcript", headers=auth(token_store.create(Role.SITE)[0], "carol"))
    assert response.status_code == 404, response.get_data(as_text=True)
