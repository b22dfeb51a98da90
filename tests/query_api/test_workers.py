"""`serve --workers`: gunicorn's threaded worker as chat-archive runs it (query_api.workers)."""

from __future__ import annotations

import socket
import threading

from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import TConn

from query_api.workers import _Worker


def answer_thread(environ, start_response):
    """A WSGI app answering with the thread that serves the request."""
    start_response("200 OK", [("Content-Length", "8")])
    return [b"%08x" % (threading.get_ident() & 0xFFFFFFFF)]


def worker() -> _Worker:
    cfg = Config()
    made = _Worker(0, 0, [], None, 60, cfg, Logger(cfg))
    made.wsgi = answer_thread
    return made


def ask(client: socket.socket) -> bytes:
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < 8:
        chunk = client.recv(4096)
        assert chunk, "the connection closed before its answer"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    return answer.partition(b"\r\n\r\n")[2]


def test_a_kept_alive_connection_asking_again_at_once_is_served_by_the_same_thread():
    """The next request on a connection is read by the thread that answered the one before, not
    handed back to the worker's loop, as long as it comes promptly; when the client hangs up the
    thread gives the connection back to be closed."""
    served, client = socket.socketpair()
    client.settimeout(10)
    answers: list[bytes] = []

    def browse() -> None:
        for _ in range(3):
            answers.append(ask(client))
        client.close()

    talking = threading.Thread(target=browse)
    talking.start()
    conn = TConn(Config(), served, ("127.0.0.1", 0), ("127.0.0.1", 8000))
    conn.init()
    keepalive, _ = worker().handle(conn)
    talking.join(15)
    conn.close()
    assert len(answers) == 3 and len(set(answers)) == 1
    assert not keepalive  # the client hung up: nothing to keep


def test_an_idle_kept_alive_connection_goes_back_to_the_loop():
    served, client = socket.socketpair()
    client.settimeout(10)
    conn = TConn(Config(), served, ("127.0.0.1", 0), ("127.0.0.1", 8000))
    conn.init()
    done: list[tuple] = []
    handling = threading.Thread(target=lambda: done.append(worker().handle(conn)))
    handling.start()
    ask(client)
    handling.join(15)  # the client asks nothing more: the thread must not stay on it
    assert done and done[0][0] is True  # kept alive, for the loop to watch
    client.close()
    conn.close()



def test_a_send_timeout_one_answer_set_does_not_outlive_it():
    """A streamed answer bounds its sends (``context.limited_stream``); the next request on the
    connection starts blocking again, as after gthread's own hand-over."""

    def timed(environ, start_response):
        connection = environ["gunicorn.socket"]
        seen = b"none    " if connection.gettimeout() is None else b"timeout "
        connection.settimeout(30)
        start_response("200 OK", [("Content-Length", "8")])
        return [seen]

    served, client = socket.socketpair()
    client.settimeout(10)
    answers: list[bytes] = []

    def browse() -> None:
        for _ in range(2):
            answers.append(ask(client))
        client.close()

    talking = threading.Thread(target=browse)
    talking.start()
    conn = TConn(Config(), served, ("127.0.0.1", 0), ("127.0.0.1", 8000))
    conn.init()
    serving = worker()
    serving.wsgi = timed
    serving.handle(conn)
    talking.join(15)
    conn.close()
    assert answers == [b"none    ", b"none    "]
