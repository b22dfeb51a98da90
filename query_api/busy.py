"""At most ``[api] active_requests`` requests run the app at once in a process; the others wait their turn.

Why: a request's work is Python holding the interpreter lock (hits and snippets, JSON, templates).
Sixteen server threads running it at once do no more work than four, but each then waits for the
lock in 5 ms slices behind the others, so every answer takes longer and the slowest far longer.
The server keeps its threads, since open streams and slow clients hold one each: only the app's
own call is limited. A streamed body (replay, export, `follow`, a download) is written after that
call returns, outside the limit, so streams never hold a turn.

Turns are handed over first come, first served: with a plain semaphore a request arriving as a
turn frees can take it from one that has waited long, and the slowest answers grow.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class Turns:
    """``limit`` turns, handed to waiters in the order they came."""

    def __init__(self, limit: int):
        self._lock = threading.Lock()
        self._free = limit
        self._waiting: deque[threading.Event] = deque()

    def __enter__(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the turn passes on directly: no one can cut in
            else:
                self._free += 1


class ActiveRequests:
    """WSGI middleware: ``app`` called by at most ``limit`` threads at once."""

    def __init__(self, app: WsgiApp, limit: int):
        self.app = app
        self._turns = Turns(limit)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        with self._turns:
            return self.app(environ, start_response)
