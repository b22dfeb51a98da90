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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from . import wakeup
from .errors import ApiError

T = TypeVar("T")


class DeadlinePool:
    def __init__(self, workers: int, name: str):
        self.name = name
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)

    def run(self, work: Callable[[], T], seconds: float) -> T:
        """``work()``'s result if a slot frees and the work is done within ``seconds``; else 503
        (work that started finishes unseen)."""
        deadline = time.monotonic() + seconds
        if not self._slots.acquire(timeout=seconds):
            raise self._late(seconds)
        job = _Job(work, wakeup.for_this_thread(), self._slots)
        try:
            self._pool.submit(job.run)
        except RuntimeError:
            self._slots.release()
            raise
        # Not a future: its result is handed over holding the interpreter lock (``wakeup``).
        while not job.done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._late(seconds)
            job.waker.wait(left)
        if job.error is not None:
            raise job.error
        return job.result

    def _late(self, seconds: float) -> ApiError:
        return ApiError(
            503, f"{self.name}_timeout", f"the {self.name} took longer than {seconds:g} s: narrow it down",
            headers={"Retry-After": "5"},
        )  # fmt: skip


class _Job(Generic[T]):
    def __init__(self, work: Callable[[], T], waker: wakeup.Waker, slots: threading.BoundedSemaphore):
        self.work, self.waker, self.slots = work, waker, slots
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as e:  # handed to the waiting thread, as a future would
            self.error = e
        finally:
            self.done = True
            self.slots.release()
            self.waker.wake()
