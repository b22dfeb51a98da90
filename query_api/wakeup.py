"""Waking a waiting thread without holding the interpreter lock while doing it.

A ``threading`` condition, event or future wakes its waiter inside ``lock.release()``, with the
interpreter lock held; on a loaded machine the waking thread was often preempted right there by
the thread it woke, which then waited for the interpreter lock that the preempted thread still
held. py-spy --gil put 35-42% of a one-worker search server's lock-holding samples on that one
line (Condition.notify's ``waiter.release()``). An eventfd is written and polled with the
interpreter lock released, so whoever runs next can take it.
"""

from __future__ import annotations

import math
import os
import select
import threading


class Waker:
    """One thread's wake-up signal (``for_this_thread``); any thread may ``wake`` it."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)

    def wake(self) -> None:
        os.eventfd_write(self.fd, 1)

    def wait(self, seconds: float | None = None) -> None:
        """Until a wake-up, or ``seconds`` have passed. A wake-up can be left over from an earlier
        wait that gave up: callers check what they wait for, and wait again."""
        if self._poll.poll(-1 if seconds is None else max(1, math.ceil(seconds * 1000))):
            os.eventfd_read(self.fd)

    def __del__(self) -> None:  # its thread has ended
        os.close(self.fd)


_threads = threading.local()


def for_this_thread() -> Waker:
    waker = getattr(_threads, "waker", None)
    if waker is None:
        waker = _threads.waker = Waker()
    return waker
