"""Hands events to the store from a thread of its own, in batches, without adding latency.

The listener's event loop never waits on the database: it puts events on a
queue. The writer takes everything queued at that moment (up to
``max_batch``) and appends it in one transaction, so batches grow by
themselves under load while a lone event is written at once. A failed append
is retried with back-off (the store is idempotent) until it succeeds or the
writer stops, and reported to ``on_health`` (the error; None once it works). What a stop gives up on, with
everything queued after it, is counted (``lost``) and keeps ``stored_until`` before it. ``fence`` says why
nothing may be appended now (the listener's lease lost or lapsed: another listener may have taken over), which
is waited out as an error is. ``under``: the lease every append is made under, which the store checks in the
append's transaction (a pause between ``fence`` and the commit must not let the append follow a takeover).

The queue is bounded without dropping anything: once more than ``high_water``
events wait, ``on_full(True)`` is called (the listener stops reading from the
server, so the server's own flow control holds the rest back) and a log line
says so; once the queue has drained to half of that, ``on_full(False)``. ``on_full`` is
called holding the writer's lock, so the calls come in the order of the changes: it must
only schedule (e.g. ``loop.call_soon_threadsafe``), never block.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from archive.errors import Fenced
from archive.events import Event, Recorded
from archive.health import Backoff
from archive.lease_tables import Fence
from archive.store import MAX_BATCH, EventStore
from archive.times import utcnow

log = logging.getLogger(__name__)

_STOP = object()


class BatchWriter:
    def __init__(
        self,
        store: EventStore,
        *,
        max_batch: int = MAX_BATCH,
        on_written: Callable[[list[Recorded], int], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_health: Callable[[str | None], None] | None = None,
        on_full: Callable[[bool], None] | None = None,
        high_water: int = 50_000,
        fence: Callable[[], str | None] | None = None,
        under: Fence | None = None,
    ):
        self._store = store
        self._fence, self._under = fence, under
        self._max_batch = max_batch
        self._on_written = on_written
        self._on_error = on_error
        self._on_health = on_health
        self._on_full = on_full
        self.high_water = high_water
        self.full = False
        self._failing = False
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0
        self._put_total = 0  # events ever put; written in order, so a mark is reached once all before it are
        self._done_total = 0
        self._drained_at = utcnow()
        self.lost = 0  # events given up at shutdown
        self._lost_since: datetime | None = None  # the earliest time (recorded_at) of those
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="archive-writer", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def put(self, events: Sequence[Event]) -> None:
        if events:
            with self._idle:
                self._pending += len(events)
                self._put_total += len(events)
                filled = not self.full and self._pending > self.high_water
                if filled:
                    self.full = True
                    # Under the lock: the writer's "drained" cannot be told before this "full".
                    if self._on_full:
                        self._on_full(True)
            self._queue.put(list(events))
            if filled:
                log.warning(
                    "write queue full: %d events wait for the store; holding back input from the server until it drains",
                    self._pending,
                )

    @property
    def pending(self) -> int:
        """Events put and not yet written."""
        with self._idle:
            return self._pending

    def mark(self) -> int:
        """A mark of everything put so far, for ``wait_written``."""
        with self._idle:
            return self._put_total

    def wait_written(self, mark: int, timeout: float) -> bool:
        """True once every event put before ``mark`` was taken has been written (or given up at shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._done_total >= mark, timeout)

    def stored_until(self, now: datetime) -> datetime:
        """A time before which every event put has been stored: ``now`` if nothing is pending, and never past an
        event given up at shutdown (the next run's gap starts here, and the views' known moment ends here)."""
        with self._idle:
            until = now if self._pending == 0 else self._drained_at
            return until if self._lost_since is None else min(until, self._lost_since)

    def wait_idle(self, timeout: float) -> bool:
        """True once every event put so far has been written (for tests and shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        self._stopping = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[Event] = []
            while True:
                if item is _STOP:
                    stop = True
                else:
                    batch += item
                if stop or len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)

    def _give_up(self, batch: list[Event]) -> None:
        first = min(event.recorded_at for event in batch)
        with self._idle:
            self.lost += len(batch)
            self._lost_since = first if self._lost_since is None else min(self._lost_since, first)

    def _write(self, batch: list[Event]) -> None:
        backoff, recorded, stored = Backoff(first=0.1, most=5.0), [], False
        # Once a stop gave up on a batch, every later one is given up too, untried: stored after the hole, it would
        # move the rooms' last events (where the next start's gaps begin) and their archive anchors past it.
        for attempt in range(0 if self._stopping and self.lost else 1_000_000):
            try:
                if self._fence is not None and (why := self._fence()):
                    raise Fenced(why)
                recorded = self._store.append(batch, fence=self._under) if self._under else self._store.append(batch)
                stored = True
                break
            except Exception as e:  # noqa: BLE001 - never lose the batch to one failure
                message = f"could not append {len(batch)} events (attempt {attempt + 1}): {e}"
                log.error(message)
                self._failing = True
                if self._on_error:
                    self._on_error(message)
                if self._on_health:
                    self._on_health(message)
                if self._stopping and attempt >= 2:
                    break
                time.sleep(backoff.next())
        if not stored:
            log.error("giving up on %d events at shutdown", len(batch))
            self._give_up(batch)
        if stored and self._failing:
            self._failing = False
            log.info("the store takes events again")
            if self._on_health:
                self._on_health(None)
        if self._on_written:
            self._on_written(recorded, len(batch))
        with self._idle:
            self._pending -= len(batch)
            self._done_total += len(batch)
            if self._pending == 0:
                self._drained_at = utcnow()
            drained = self.full and self._pending <= self.high_water // 2
            if drained:
                self.full = False
                if self._on_full:
                    self._on_full(False)
            self._idle.notify_all()
        if drained:
            log.info("write queue drained (%d events wait): reading from the server again", self._pending)
