"""`serve --workers`: gunicorn's threaded worker as chat-archive runs it (query_api.workers)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import TConn

from query_api import workers
from query_api.workers import MAX_HELD_REQUESTS, _Worker


def answer_thread(environ, start_response):
    """A WSGI app answering with the thread that serves the request."""
    start_response("200 OK", [("Content-Length", "8")])
    return [b"%08x" % (threading.get_ident() & 0xFFFFFFFF)]


def ask(client: socket.socket) -> bytes:
    """One request on the client's connection; the answer's 8-byte body."""
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < 8:
        chunk = client.recv(4096)
        assert chunk, "the connection closed before its answer"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    return answer.partition(b"\r\n\r\n")[2]


def worker_and_connection(app) -> tuple[_Worker, TConn, socket.socket]:
    """A worker running ``app``, a connection to it as its loop would hand it over, and the client's end."""
    served, client = socket.socketpair()
    client.settimeout(10)
    cfg = Config()
    worker = _Worker(0, 0, [], None, 60, cfg, Logger(cfg))
    worker.wsgi = app
    conn = TConn(cfg, served, ("127.0.0.1", 0), ("127.0.0.1", 8000))
    conn.init()
    return worker, conn, client


def serve_one_connection(app, requests: int, *, hang_up: bool = True) -> tuple[list[bytes], tuple]:
    """A client asking ``requests`` times in a row on one kept-alive connection (then hanging up,
    or staying idle) while one worker thread handles the connection: the answers, and what the
    worker's ``handle`` returned (whether to keep the connection alive, for its loop to watch)."""
    worker, conn, client = worker_and_connection(app)
    answers: list[bytes] = []

    def browse() -> None:
        for _ in range(requests):
            answers.append(ask(client))
        if hang_up:
            client.close()

    talking = threading.Thread(target=browse)
    talking.start()
    handled = worker.handle(conn)
    talking.join(15)
    conn.close()
    client.close()
    return answers, handled


@pytest.fixture
def prompt(monkeypatch):
    """The client asks again as soon as it has its answer, but from a thread of its own: on a loaded machine
    (load 5-7 on 2 cores) it may not run within the held connection's wait (5 ms), and its request then waits
    for a worker loop these tests do not run (a client read timeout). A wait long enough for any scheduler's
    delay serves it by the same path; a client that hangs up ends the wait at once."""
    monkeypatch.setattr(workers, "NEXT_REQUEST_WAIT_MS", 5000)


def test_a_kept_alive_connection_asking_again_at_once_is_served_by_the_same_thread(prompt):
    """The next request on a connection is read by the thread that answered the one before, not
    handed back to the worker's loop, as long as it comes promptly; when the client hangs up the
    thread gives the connection back to be closed."""
    answers, (keepalive, _) = serve_one_connection(answer_thread, 3)
    assert len(answers) == 3 and len(set(answers)) == 1
    assert not keepalive  # the client hung up: nothing to keep


def test_an_idle_kept_alive_connection_goes_back_to_the_loop():
    answers, (keepalive, _) = serve_one_connection(answer_thread, 1, hang_up=False)
    assert len(answers) == 1 and keepalive  # the thread let go of it, kept alive for the loop to watch


def test_every_request_waits_for_its_client_within_the_bound_an_answer_may_not_change(prompt):
    """Every wait for the client (its request, room for the answer) is bounded (``client_seconds``, gthread sets
    none: a stalled client held its thread for ever); an answer that sets its own timeout does not outlive it."""

    def timed(environ, start_response):
        connection = environ["gunicorn.socket"]
        seen = b"%8g" % connection.gettimeout()
        connection.settimeout(99)
        start_response("200 OK", [("Content-Length", "8")])
        return [seen]

    answers, _ = serve_one_connection(timed, 2)
    assert answers == [b"%8g" % _Worker.client_seconds] * 2


def test_a_connection_that_never_pauses_goes_back_to_the_loop_after_a_bounded_run(prompt):
    """A client asking back to back must not keep its thread for ever: with every thread held so,
    the connections the loop queued for the pool would wait without end."""
    worker, conn, client = worker_and_connection(answer_thread)
    answers: list[bytes] = []

    def hammer() -> None:
        for _ in range(MAX_HELD_REQUESTS + 1):
            answers.append(ask(client))
        client.close()

    talking = threading.Thread(target=hammer)
    talking.start()
    keepalive, _ = worker.handle(conn)
    deadline = time.monotonic() + 10  # the client reads the run's last answer
    while len(answers) < MAX_HELD_REQUESTS and time.monotonic() < deadline:
        time.sleep(0.01)
    held = len(answers)  # no thread serves the connection now: its next request waits for the loop
    worker.handle(conn)  # the loop's next turn for this connection: its last request
    talking.join(15)
    conn.close()
    assert keepalive and held == MAX_HELD_REQUESTS and len(answers) == MAX_HELD_REQUESTS + 1



def test_a_worker_ending_ends_its_export_jobs_before_its_process_exits(app):
    """`serve --workers N`: a worker's export jobs were not ended when it exited, as the one-process server ends
    them: their threads went on reading a store its exiting process tore down under them."""
    from archive.errors import ChatArchiveError
    from query_api.context import EXTENSION
    from query_api.exports.bundle import ExportRequest

    served = workers._Workers(lambda stop: app, {}, print)  # its configuration, as gunicorn's master reads it
    worker = _Worker(0, 0, [], None, 60, served.cfg, Logger(served.cfg))
    worker.wsgi = app  # the app the worker built after the fork
    served.cfg.worker_exit(None, worker)
    with pytest.raises(ChatArchiveError, match="stopping"):  # closed: its running jobs ended, no new one starts
        app.extensions[EXTENSION].exports.start(ExportRequest(format="jsonl"), "owner", None, None, None)
