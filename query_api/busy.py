"""At most ``[api] active_requests`` requests run the app at once in a process; the others wait their turn.

Why: a request's work is Python holding the interpreter lock (hits and snippets, JSON, templates).
Sixteen server threads running it at once do no more work than one per core, but each then waits for
the lock in 5 ms slices behind the others, so every answer takes longer and the slowest far longer.
The server keeps its threads, since open streams and slow clients hold one each: only the app's
own call is limited. A streamed body (replay, export, `follow`, a download) is written after that
call returns, outside the limit, so streams never hold a turn.

Turns are handed over first come, first served: with a plain semaphore a request arriving as a
turn frees can take it from one that has waited long, and the slowest answers grow.

A request gives its turn back while it waits on something that is not this process's Python work
(``waiting()``: its audit record's commit, on PostgreSQL a few network round trips and a WAL flush;
the permission site's answer, up to ``[api] permission_timeout``; a search still running after
``deadline.HELD_TURN`` (0.5 s), up to ``[api] search_timeout``),
so that the turn serves another request meanwhile, and requests waiting on one commit can share it;
it takes a turn again after, ahead of those queued (it came before them, and is nearly done). The audit
commit is a request's last wait (``given_up()``): its turn is not taken again, and what little is left of
the request (its answer handed back to the server) runs without one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class Turns:
    """``limit`` turns, handed to waiters in the order they came."""

    def __init__(self, limit: int):
        self._lock = threading.Lock()
        self._free = limit
        # Each waiter sleeps on a lock of its own, taken for it and released when the turn is its:
        # the cheapest hand-over there is (an Event is a condition and a lock, in Python code).
        self._waiting: deque[threading.Lock] = deque()

    def __enter__(self) -> None:
        self._take(first=False)

    def _take(self, *, first: bool) -> None:
        """A turn, else a place in the queue: at its end, or ``first`` at its head."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.appendleft(turn) if first else self._waiting.append(turn)
        turn.acquire()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()  # the turn passes on directly: no one can cut in
            else:
                self._free += 1

    @contextmanager
    def stepped_out(self) -> Iterator[None]:
        """The caller's turn lent out for the block, taken back after ahead of the queue."""
        self.__exit__()
        try:
            yield
        finally:
            self._take(first=True)


# The turns of the app call this thread is in, while it holds one of them.
_held: ContextVar[Turns | None] = ContextVar("turns_held", default=None)


@contextmanager
def waiting() -> Iterator[None]:
    """Around a wait that is not Python work: the request's turn serves another request meanwhile.
    Outside a turn (a streamed body, a test calling the app bare) it changes nothing."""
    turns = _held.get()
    if turns is None:
        yield
        return
    _held.set(None)  # a nested wait has no turn to give
    try:
        with turns.stepped_out():
            yield
    finally:
        _held.set(turns)


def given_up() -> None:
    """The turn this thread holds goes to the next request for good, before the request's last wait (its audit
    record's commit). Taking a turn again after it cost each audited request another sleep and wake-up in the
    turns' queue behind two running requests, for the few Python calls left of it: at 1M on PostgreSQL, `serve
    --workers 1` under wrk, the server's CPU a request fell by a median 28 us (searches) and 36 us (transcript
    pages), with 1-2 fewer context switches (14 rounds each, paired with the earlier code's, 10 of 14 lower).
    Outside a turn (a streamed body, a test calling the app bare) it changes nothing."""
    turns = _held.get()
    if turns is not None:
        _held.set(None)
        turns.__exit__()


def turns_for(setting: int, cores: int, processes: int) -> int:
    """``[api] active_requests``, where 0 means one per core this process has (of the host's
    cores shared by its ``processes``). C code (tantivy, the database) runs beside the
    interpreter lock, but a second request per core mostly waits for it: each thread coming
    back from C or a system call waits for the lock, and every hand-over is a context switch.
    Measured at 1M with wrk, `serve --workers 1` on 2 cores, interleaved rounds, server and wrk
    at high priority (as on a quiet machine), load 6-8: transcript pages 1,049 -> 1,248/s,
    p99 46 -> 36 ms, 35 -> 15 context switches and 1.04 -> 0.74 ms CPU a request with 2 turns
    instead of 4; searches 581 -> 641/s and 623 -> 646/s (two runs, every round faster),
    1.83 -> 1.61 and 1.53 -> 1.45 ms CPU a request; two workers searched at 690 -> 771/s,
    p99 73 -> 65 ms with 1 turn each instead of 2. (Earlier, with 16 at once against 4: one
    worker's transcript pages 310-405/s, p99 77-105 ms, against 530-660/s, p99 34-51 ms.)"""
    return setting or max(1, cores // max(1, processes))


class ActiveRequests:
    """WSGI middleware: ``app`` called by at most ``limit`` threads at once."""

    def __init__(self, app: WsgiApp, limit: int):
        self.app = app
        self._turns = Turns(limit)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        self._turns.__enter__()
        held = _held.set(self._turns)
        try:
            return self.app(environ, start_response)
        finally:
            if _held.get() is self._turns:  # not given up (``given_up``)
                self._turns.__exit__()
            _held.reset(held)
