"""Group commit: concurrent callers share one transaction (the audit trail's writes)."""

from __future__ import annotations

import threading


class _Slot:
    """A caller's item, what became of it, and the lock its caller sleeps on until a leader
    releases it (once: its item committed, or the lead handed to it)."""

    __slots__ = ("item", "wake", "done", "error")

    def __init__(self, item):
        self.item = item
        self.wake = threading.Lock()
        self.wake.acquire()
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """Callers of ``write`` from many threads share commits: one caller at a time leads, writing
    the oldest ``max_batch`` items queued with ``commit(items)`` (its own is the oldest), then
    hands the lead to the oldest caller still queued, if any. Each caller returns once its item
    is committed, or raises what the commit raised. ``max_batch`` bounds a commit's parameters
    (SQLite's audit batch is one statement: 4 per record, and SQLite before 3.32 takes at most 999).

    Each caller sleeps on a lock of its own, which the leader releases: a commit wakes only the
    callers of its batch and the next leader. (A condition's ``notify_all`` woke every waiting
    request thread after each commit, and all but those went back to sleep, each after taking the
    interpreter lock from the threads doing the process's work.)"""

    def __init__(self, commit, max_batch: int = 200):
        self._commit = commit
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._busy = False  # a leader is at work; while none is, the queue is empty
        self._successor: _Slot | None = None  # the caller the lead was last handed to, until it takes it

    def write(self, item) -> None:
        slot, lead = _Slot(item), False
        try:
            with self._lock:
                self._queue.append(slot)
                lead, self._busy = not self._busy, True
            if not lead:
                slot.wake.acquire()
            if not slot.done:
                self._lead()
        except BaseException:
            # Interrupted (Ctrl-C) from queueing until its lead begins: leave, and pass on a lead it took or
            # was handed, else every later caller would queue behind nobody.
            self._leave(slot, lead)
            raise
        if slot.error is not None:
            raise slot.error

    def _lead(self) -> None:
        """Commit the oldest items (the leader's first among them), wake their callers, pass the lead on."""
        with self._lock:
            self._successor = None
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        error = None
        try:
            self._commit([s.item for s in batch])
        except BaseException as e:  # noqa: BLE001 - every caller of the batch gets it; an interrupt
            error = e  # (SystemExit in the leader's thread) must not leave them and the queue asleep
        for s in batch:
            s.done, s.error = True, error
        self._hand_over()
        for s in batch[1:]:  # the first is the leader's own
            s.wake.release()

    def _hand_over(self) -> None:
        """Wake the oldest queued caller to lead (first: its commit runs while the batch's callers go on),
        or mark the group idle."""
        with self._lock:
            successor = self._successor = self._queue[0] if self._queue else None
            self._busy = successor is not None
        if successor is not None:
            successor.wake.release()

    def _leave(self, slot: _Slot, lead: bool) -> None:
        """A caller that stopped waiting: its item is not written unless a commit took it already."""
        with self._lock:
            if slot not in self._queue:
                return  # taken into a batch: its leader goes on without it
            self._queue.remove(slot)
            handed = lead or self._successor is slot
        if handed:
            self._hand_over()
