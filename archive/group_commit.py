"""Group commit: concurrent callers share one transaction (the audit trail's writes)."""

from __future__ import annotations

import threading


class GroupCommit:
    """Callers of ``write`` from many threads share commits: the first to find none in progress
    writes the oldest ``max_batch`` items queued by then with ``commit(items)``; the others wait,
    and whoever finds its item still queued after a commit leads the next one (a leader whose own
    item was not among the oldest, too). Each caller returns once its item is committed, or raises
    what the commit raised. ``max_batch`` bounds a commit's parameters (SQLite's audit batch is one
    statement: 4 per record, and SQLite before 3.32 takes at most 999)."""

    def __init__(self, commit, max_batch: int = 200):
        self._commit = commit
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[list] = []  # [item, done, error]
        self._busy = False

    def write(self, item) -> None:
        slot = [item, False, None]
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while self._busy and not slot[1]:
                    self._cond.wait()
                if slot[1]:
                    break
                self._busy = True
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._commit_batch(batch)
        if slot[2] is not None:
            raise slot[2]

    def _commit_batch(self, batch: list[list]) -> None:
        error = None
        try:
            self._commit([s[0] for s in batch])
        except Exception as e:  # noqa: BLE001 - every waiter of the batch gets it
            error = e
        with self._cond:
            for s in batch:
                s[1], s[2] = True, error
            self._busy = False
            self._cond.notify_all()
