"""Clients that stall, against real served processes (`serve`: waitress; `serve --workers 1`: gunicorn), over
real sockets: connections that send nothing, a request line sent in part, a request trickled a byte at a time,
answers never read. The server goes on answering a normal client meanwhile, and drops the stalled ones."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from .serving import start_serve

STALL_SECONDS = 1


@pytest.fixture(scope="module", params=[0, 1], ids=["serve", "serve --workers 1"])
def served(request, tmp_path_factory):
    # Two threads: two clients that hold one each stall the server (or a worker) whole.
    served = start_serve(tmp_path_factory.mktemp("slow-clients"), f"threads = 2\nstalled_client_seconds = {STALL_SECONDS}\n",
                         workers=request.param)  # fmt: skip
    yield served
    served.stop()


def address(served) -> tuple[str, int]:
    host, port = served.url.removeprefix("http://").split(":")
    return host, int(port)


def answered(served, path: str = "/healthz", timeout: float = 10) -> bool:
    try:
        return served.request("GET", path, timeout=timeout)[0] == 200
    except OSError:  # timed out: not answered
        return False


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closed ``sock`` within ``timeout`` (what it sent before is skipped)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(1 << 20):
                return True
    except TimeoutError:
        return False
    except OSError:  # reset
        return True
    return False


def test_clients_that_send_nothing_part_of_a_request_or_a_byte_at_a_time_are_dropped(served):
    """gunicorn read a client's request with no timeout: a request line sent in part held a thread for ever
    (two of them, the worker). waitress holds 100 connections at most (`[api] connection_limit`): 100 that sent
    nothing, or a byte a minute, stopped it accepting any other."""
    clients: list[socket.socket] = []
    stop = threading.Event()
    try:
        for kind in ["partial"] * 2 + ["trickle"] * 2 + ["silent"] * 96:  # as many as the server holds
            sock = socket.create_connection(address(served), timeout=10)
            clients.append(sock)
            if kind == "partial":
                sock.sendall(b"GET /api/v1/rooms HT")
            elif kind == "trickle":
                sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        trickling = clients[2:4]

        def trickle() -> None:  # a byte every 0.2 s: each well within the server's wait for the next
            while not stop.wait(0.2):
                for sock in trickling:
                    try:
                        sock.send(b"a")
                    except OSError:
                        pass

        threading.Thread(target=trickle, daemon=True).start()
        started = time.monotonic()
        assert answered(served), "a normal client was not answered while the stalled ones were connected"
        assert time.monotonic() - started < 8
        assert all(closed_by_server(sock, STALL_SECONDS + 5) for sock in clients), "a stalled client was kept"
    finally:
        stop.set()
        for sock in clients:
            sock.close()
    assert answered(served)
    assert "Traceback" not in served.log()


def test_a_client_that_never_reads_its_answers_is_dropped(served):
    """gunicorn wrote an answer with no timeout: a client that asks (here, 400 requests sent at once) and reads
    nothing held the thread writing to it for ever once the sockets' buffers were full."""
    clients = []
    try:
        for _ in range(2):  # as many as the server has threads
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(address(served))
            sock.sendall(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 400)  # some 15 MB of answers
            clients.append(sock)
        time.sleep(0.5)  # their answers fill the buffers
        started = time.monotonic()
        assert answered(served), "a normal client was not answered while two clients read nothing"
        assert time.monotonic() - started < 8
    finally:
        for sock in clients:
            sock.close()
    assert answered(served)
    assert "Traceback" not in served.log()


@pytest.mark.parametrize("workers", [0, 1], ids=["serve", "serve --workers 1"])
def test_the_connection_limit_is_the_configured_one(tmp_path, workers):
    """`[api] connection_limit`: past it a server process accepts no more connections (waitress counts two sockets
    of its own among them) until some close; here, until the silent ones are dropped."""
    served = start_serve(tmp_path, "connection_limit = 4\nthreads = 2\nstalled_client_seconds = 3\n", workers=workers)
    clients = []
    try:
        assert answered(served)
        clients = [socket.create_connection(address(served), timeout=10) for _ in range(6)]  # silent
        time.sleep(0.3)  # accepted
        assert not answered(served, timeout=1.5)
        assert answered(served)
    finally:
        for sock in clients:
            sock.close()
        served.stop()
