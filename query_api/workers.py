"""Serving the app from N worker processes behind one port, with gunicorn.

One Python process is the API's ceiling (the GIL: tantivy searches in parallel,
the Python around a request does not), so a serving host runs several. Each
worker builds its own app after the fork (``make_app(stop)``): its own store
connections, views and index reader, nothing shared by memory. That is why
sessions, tickets and cursors are signed values any process verifies
(``query_api.signing``).

Workers are gunicorn's threaded workers (``gthread``): a ``follow`` stream holds
one thread of its worker, as it holds a waitress thread in one-process mode.
SIGTERM to the master stops the workers gracefully; each worker's ``stop``
event is set on the way, which ends its open follow streams at once, and its
export jobs are ended before it exits.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from archive.errors import ConfigError

from .context import EXTENSION

GRACEFUL_SECONDS = 10
HEARTBEAT_SECONDS = 1.0
NEXT_REQUEST_WAIT_MS = 5
MAX_HELD_REQUESTS = 32


class _Worker(ThreadWorker):
    """gunicorn's threaded worker, telling the master it is alive at most once a second, serving a kept-alive
    connection's prompt requests on the thread it is on, and disconnecting clients that stall.

    gthread waits for a client's bytes without end: a connection that sends nothing stays open (and counts
    against ``worker_connections``), a request sent a byte at a time or a large answer never read holds a thread
    (a socket with no timeout), and a few such clients stall the worker. Here every wait for a client (for its
    bytes, for room for ours) is given up after ``client_seconds`` (``[api] stalled_client_seconds``), and so is
    a connection that has not sent a whole request head (request line and headers) that long after it began or
    after it connected. Its request body and its answer then have the per-wait bound only (a buffering proxy in
    front bounds them whole: docs/DEPLOY.md)."""

    _told = float("-inf")
    client_seconds = 30.0  # serve_workers sets the configured value

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._heads_due: dict = {}  # connection -> when its request head is due (a thread is reading it)
        self._heads_lock = threading.Lock()
        self._silent_since: dict = {}  # connection -> when first seen waiting for its first bytes (no thread)
        self._next_check = 0.0

    def init_process(self) -> None:
        logging.getLogger("gunicorn.error").addFilter(_stalled_client_line)
        super().init_process()

    def notify(self) -> None:
        now = time.monotonic()
        if now - self._told >= HEARTBEAT_SECONDS:
            self._told = now
            super().notify()

    def handle(self, conn):
        """Requests of one kept-alive connection, for as long as the next comes within
        ``NEXT_REQUEST_WAIT_MS`` of the answer before it.

        gthread hands a kept-alive connection back to the worker's loop after each answer: the
        loop registers it with its poller, wakes when the next request comes, unregisters it and
        submits it to the thread pool as a new future, which it then waits for with every other.
        That is Python work under the interpreter lock on every request, in a thread that must
        take the lock from the request threads first. A client that asks again at once (a page's
        burst, a service calling the API) is served by the thread it is on instead; an idle
        connection goes back to the loop after a few milliseconds, as before; one that never
        pauses, after ``MAX_HELD_REQUESTS``, so that connections queued for a thread get theirs."""
        for _ in range(MAX_HELD_REQUESTS - 1):
            keepalive, conn = self._one_request(conn)
            if not (keepalive and self.alive and _readable(conn.sock, NEXT_REQUEST_WAIT_MS)):
                return keepalive, conn
        return self._one_request(conn)

    def _one_request(self, conn):
        # Each request from the bound (gthread's hand-over leaves a socket blocking; an answer may set its own).
        if conn.sock.gettimeout() != self.client_seconds:
            conn.sock.settimeout(self.client_seconds)
        with self._heads_lock:
            self._heads_due[conn] = time.monotonic() + self.client_seconds
        try:
            return super().handle(conn)
        finally:
            with self._heads_lock:
                self._heads_due.pop(conn, None)

    def handle_request(self, req, conn):
        """Called once a request's head is read: the app's to answer from now on."""
        with self._heads_lock:
            self._heads_due.pop(conn, None)
        return super().handle_request(req, conn)

    def murder_keepalived(self) -> None:
        """gthread's loop calls this on every turn (it closes idle kept-alive connections): once a second, also
        the connections that are too slow to send a request head."""
        super().murder_keepalived()
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + 1.0
            self._drop_slow_heads(now)
            self._drop_silent(now)

    def _drop_slow_heads(self, now: float) -> None:
        with self._heads_lock:
            late = [conn for conn, due in self._heads_due.items() if due <= now]
            for conn in late:
                del self._heads_due[conn]
        for conn in late:
            # Its thread is blocked reading: a shut socket ends that read (no more data), and gthread closes it.
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _drop_silent(self, now: float) -> None:
        """Close the connections that sent nothing since they connected, ``client_seconds`` after this first saw
        them (gthread's poller holds them until their first bytes, with no timeout)."""
        seen = {}
        with self._lock:
            for key in list(self.poller.get_map().values()):
                waiting = key.data
                if not (isinstance(waiting, functools.partial) and waiting.func == self.on_client_socket_readable):
                    continue  # a listener
                conn = waiting.args[0]
                if conn.initialized:  # kept alive between requests: gthread's keepalive closes it
                    continue
                since = seen[conn] = self._silent_since.get(conn, now)
                if now - since >= self.client_seconds:
                    del seen[conn]
                    self.poller.unregister(conn.sock)
                    self.nr_conns -= 1
                    conn.close()
        self._silent_since = seen


def _stalled_client_line(record: logging.LogRecord) -> bool:
    """gunicorn logs a client cut off by its socket's timeout (``_Worker``) as an error, with a traceback; a line
    saying so is what it is (each one a client's doing, not the server's failure)."""
    if record.exc_info and isinstance(record.exc_info[1], TimeoutError):
        record.msg, record.args = "disconnected a client that stalled (%s)", (record.exc_info[1],)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def _readable(sock, milliseconds: int) -> bool:
    """Whether ``sock`` has bytes (or its end) to read within ``milliseconds``."""
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(milliseconds))


class _Workers(BaseApplication):
    def __init__(self, make_app: Callable[[threading.Event], Flask], options: dict, on_ready: Callable[[str], None]):
        self._make_app = make_app
        self._options = options
        self._on_ready = on_ready
        self._stop = threading.Event()
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        self.cfg.set("when_ready", lambda arbiter: self._on_ready(str(arbiter.LISTENERS[0])))
        self.cfg.set("post_worker_init", self._stop_on_exit)
        self.cfg.set("worker_exit", _end_export_jobs)

    def load(self) -> Flask:
        """In each worker, after the fork: an app of its own."""
        self._stop = threading.Event()
        return self._make_app(self._stop)

    def _stop_on_exit(self, worker) -> None:
        """Chain the worker's exit signals so that they also end its follow streams."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            previous = signal.getsignal(sig)

            def handler(signum, frame, previous=previous):
                self._stop.set()
                if callable(previous):
                    previous(signum, frame)

            signal.signal(sig, handler)


def _end_export_jobs(_arbiter, worker) -> None:
    """In a worker that has stopped serving, before its process exits under them: its export jobs end at their
    next step (failed, with a reason) and their threads are joined, as the one-process server does
    (``ApiServer``). Also called in the master, whose copy of the worker has no app; a worker whose app failed
    to build serves gunicorn's own error app."""
    app = getattr(worker, "wsgi", None)
    if isinstance(app, Flask):
        app.extensions[EXTENSION].exports.close()


def serve_workers(
    make_app: Callable[[threading.Event], Flask],
    host: str,
    port: int,
    *,
    workers: int,
    threads: int,
    on_ready: Callable[[str], None],
    client_seconds: float = _Worker.client_seconds,
    connection_limit: int = 100,
) -> int:
    """Serve ``make_app``'s app from ``workers`` processes on ``host:port`` until SIGTERM/SIGINT.

    ``on_ready(url)`` is called in the master once the port is bound (port 0: any free one);
    ``client_seconds``: how long a client may stall (``_Worker``); ``connection_limit``: connections per worker.
    Returns the exit status.
    """
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": type("_Worker", (_Worker,), {"client_seconds": client_seconds}),
        "worker_connections": connection_limit,
        "threads": threads,
        "graceful_timeout": GRACEFUL_SECONDS,
        "timeout": 60,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "chat-archive serve",
        "preload_app": False,
    }
    master = os.getpid()
    try:
        _Workers(make_app, options, on_ready).run()
    except SystemExit as e:  # the arbiter exits the process; the CLI wants a status
        if os.getpid() != master:  # a worker ending: its exit is gunicorn's business
            raise
        if e.code not in (0, None):
            raise ConfigError(f"the API workers stopped (exit status {e.code}): see the log above") from None
        return 0
    return 0
