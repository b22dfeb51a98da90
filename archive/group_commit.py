"""Group commit: concurrent callers share one transaction (the audit trail's writes)."""

from __future__ import annotations

import threading


class GroupCommit:
    """Callers of ``write`` from many threads share commits: the first to find none in progress
    writes everything queued by then (its own included) with ``commit(items)``; the others wait,
    and whoever finds its item still queued after a commit leads the next one. Each caller returns
    once its item is committed, or raises what the commit raised."""

    def __init__(self, commit):
        self._commit = commit
        self._cond = threading.Condition()
        self._queue: list[list] = []  # [item, done, error]
        self._busy = False

    def write(self, item) -> None:
        slot = [item, False, None]
        with self._cond:
            self._queue.append(slot)
            while self._busy and not slot[1]:
                self._cond.wait()
            if not slot[1]:
                self._busy = True
                batch, self._queue = self._queue, []
        if not slot[1]:
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
        if slot[2] is not None:
            raise slot[2]
