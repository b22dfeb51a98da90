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
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

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
        try:
            future = self._pool.submit(work)
        except RuntimeError:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise self._late(seconds) from None

    def _late(self, seconds: float) -> ApiError:
        return ApiError(
            503, f"{self.name}_timeout", f"the {self.name} took longer than {seconds:g} s: narrow it down",
            headers={"Retry-After": "5"},
        )  # fmt: skip
