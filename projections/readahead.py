"""The log read ahead, a page at a time and up to ``PAGES_AHEAD`` pages, by a thread, while the pages before are
applied.

A read of the log waits for the database (PostgreSQL's server, SQLite's b-tree walk), and the
driver lets go of the GIL while it waits: a thread reading the next page then overlaps that wait
with applying this one, which a whole-log read (a rebuild, a catch-up) otherwise spends in turn.
"""

from __future__ import annotations

import queue
import threading

from archive.log_reads import LogPage
from archive.store import EventStore

CLOSE_WAIT = 5.0  # seconds
# Pages read and waiting to be applied. More than one: under load the database's backend waits for a core now and
# then, and a page late by that was waited for (a 1M-event PostgreSQL rebuild at load 6-8: the applying thread's
# waits for pages 0.41-0.60 s with one, 0.09-0.12 s with four). Each is one msgpack array of
# 2,000 events' states (a few hundred bytes an event).
PAGES_AHEAD = 4


class ReadAhead:
    """Pages of the log (``LogPage``) after ``after``, in order: ``next()`` returns the page after
    ``after`` (an empty one at the end of the log), read while the one before was applied. ``close``
    ends the thread; an error the thread met is raised by the ``next()`` it was reading for."""

    def __init__(self, store: EventStore, after: int, page_size: int):
        self.after = after  # where the page ``next()`` returns starts
        self._store, self._page_size = store, page_size
        # ``PAGES_AHEAD`` ready while one is applied, and the reader holding the next.
        self._pages: queue.Queue = queue.Queue(maxsize=PAGES_AHEAD)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="log read-ahead", daemon=True)
        self._thread.start()

    def next(self) -> LogPage:
        page, error = self._pages.get()
        if error is not None:
            raise error
        if page.positions:
            self.after = page.positions[-1]
        return page

    def close(self) -> None:
        self._closed.set()
        try:
            self._pages.get_nowait()  # a reader waiting to hand over a page: it may see it closed
        except queue.Empty:
            pass
        # Bounded: a read hung on its database must not keep a failed or interrupted process from
        # ending (the thread is a daemon, and stops at its next hand-over).
        self._thread.join(CLOSE_WAIT)

    def _read(self) -> None:
        after = self.after
        try:
            while not self._closed.is_set():
                page = self._store.read_log_page(after, self._page_size)
                if not self._hand_over((page, None)) or not page.positions:
                    return
                after = page.positions[-1]
        except BaseException as e:  # noqa: BLE001  (raised in the applying thread, by next(), which would wait for ever)
            self._hand_over((None, e))

    def _hand_over(self, item: tuple) -> bool:
        while not self._closed.is_set():
            try:
                self._pages.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
