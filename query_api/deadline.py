"""Work with a deadline: the request thread waits so long for it, then answers 503 and moves on.

The work itself goes on in a small pool of its own (it cannot be interrupted,
e.g. inside tantivy) but is bounded by the query caps. A request that finds
the pool full waits for a slot, and that wait counts against its deadline: a
burst of well-formed searches is answered in turn (wrk with 16 connections
against 8 slots had half its searches refused at once), while a backlog that
cannot be worked off in time still ends in a 503 after the deadline, and the
pool never runs more than its size at once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from queue import SimpleQueue
from typing import Generic, TypeVar

from .busy import waiting
from .errors import ApiError

T = TypeVar("T")

# A search at 10M takes ~5 ms (p50) in-process, and an API search under a 16-connection load up to
# ~170 ms (p99, 10M, one worker), most of it waiting for the interpreter lock: one still running after
# this is a pathological one. Lending turns sooner would let the searches of a mere overload run their
# Python beside the turns' holders: more contention, slower searches, more lent turns.
HELD_TURN = 0.5


class _Job(Generic[T]):
    """One piece of work, and the locks its requester and a pool thread meet on (bare locks: the
    cheapest hand-over there is; a future and a semaphore are conditions in Python code)."""

    __slots__ = ("work", "start", "done", "result", "error")

    def __init__(self, work: Callable[[], T]):
        self.work = work
        self.start = threading.Lock()  # taken once: by a pool thread running it, or the requester giving up first
        self.done = threading.Lock()
        self.done.acquire()  # released when the work has ended
        self.result: T | None = None
        self.error: BaseException | None = None


class DeadlinePool:
    def __init__(self, workers: int, name: str):
        self.name = name
        self._size = max(1, workers)
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._started = 0
        self._lock = threading.Lock()
        # The threads hold the queue, not the pool: a pool no longer used ends its threads.
        weakref.finalize(self, _stop, self._jobs, self._size)

    def run(self, work: Callable[[], T], seconds: float) -> T:
        """``work()``'s result if a pool thread takes it up and finishes it within ``seconds``; else
        503 (work not started by then never is; work that started finishes unseen)."""
        job = _Job(work)
        if self._started < self._size:
            self._start_thread()
        self._jobs.put(job)
        if not self._finished(job, seconds):
            raise self._late(seconds)
        if job.error is not None:
            raise job.error
        return job.result

    @staticmethod
    def _finished(job: _Job, seconds: float) -> bool:
        """Whether ``job`` ended within ``seconds``; if not, it is given up (not started yet: now it
        never will be). Past ``HELD_TURN`` its requester lends its request turn (``busy.waiting``):
        with one turn per core, a search running long would otherwise keep its worker's other
        requests waiting for up to the deadline. It gives the job up before it waits for its turn
        back, so that a pool thread freed meanwhile does not start work no one will read."""
        held = min(seconds, HELD_TURN)
        if job.done.acquire(timeout=held):
            return True
        with waiting() if seconds > held else nullcontext():
            if job.done.acquire(timeout=seconds - held):
                return True
            job.start.acquire(blocking=False)
        return job.done.acquire(blocking=False)  # it may have ended while the turn came back

    def _start_thread(self) -> None:
        with self._lock:
            if self._started < self._size:
                self._started += 1
                name = f"{self.name}_{self._started - 1}"
                threading.Thread(target=_serve, args=(self._jobs,), name=name, daemon=True).start()

    def _late(self, seconds: float) -> ApiError:
        return ApiError(
            503, f"{self.name}_timeout", f"the {self.name} took longer than {seconds:g} s: narrow it down",
            headers={"Retry-After": "5"},
        )  # fmt: skip


def _serve(jobs: SimpleQueue) -> None:
    """A pool thread: jobs in the order they came, at most one at a time, skipping those given up."""
    while (job := jobs.get()) is not None:
        if not job.start.acquire(blocking=False):
            continue
        try:
            job.result = job.work()
        except BaseException as e:  # noqa: BLE001 - the requester's to raise
            job.error = e
        job.done.release()
        del job


def _stop(jobs: SimpleQueue, threads: int) -> None:
    for _ in range(threads):
        jobs.put(None)
