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

import os
import select
import signal
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
    """gunicorn's threaded worker, telling the master it is alive at most once a second.

    Its loop tells it on every turn, that is on nearly every request, with a system call
    (``os.utime`` of the worker's heartbeat file) that gives up the interpreter lock,
    which the loop thread then waits to get back from the request threads. The master
    only looks every ``timeout`` seconds (60)."""

    _told = float("-inf")

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
            keepalive, conn = super().handle(conn)
            if not (keepalive and self.alive and _readable(conn.sock, NEXT_REQUEST_WAIT_MS)):
                return keepalive, conn
            if conn.sock.gettimeout() is not None:  # a stream's send timeout (context.limited_stream)
                conn.sock.settimeout(None)  # as the loop's hand-over leaves it: blocking, no timeout
        return super().handle(conn)


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
) -> int:
    """Serve ``make_app``'s app from ``workers`` processes on ``host:port`` until SIGTERM/SIGINT.

    ``on_ready(url)`` is called in the master once the port is bound (port 0: any free one).
    Returns the exit status.
    """
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": _Worker,
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
