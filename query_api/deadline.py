"""Work with a deadline: the request thread waits so long for it, then answers 503 and moves on.

The work itself goes on in a small pool of its own (it cannot be interrupted,
e.g. inside tantivy) but is bounded by the query caps; a full pool refuses new
work at once rather than queueing it.
"""

from __future__ import annotations

import threading
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
        """``work()``'s result if it is done within ``seconds``; else 503 (the work finishes unseen)."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(503, "busy", f"too many {self.name}es are running; try again", headers={"Retry-After": "2"})
        try:
            future = self._pool.submit(work)
        except RuntimeError:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=seconds)
        except FutureTimeout:
            raise ApiError(
                503, f"{self.name}_timeout", f"the {self.name} took longer than {seconds:g} s: narrow it down",
                headers={"Retry-After": "5"},
            ) from None  # fmt: skip
