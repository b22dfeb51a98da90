"""A rebuild's commits written by another process, while this one reads and applies the next batch.

A rebuild spends about as long in the view database (inserts, commits) as in Python applying the log,
and a write holds the GIL between rows, so a thread cannot overlap the two: a process can. The writer
is ``python -m projections.writer URL``, holding its own connection to the view database; the projections
of a rebuild that share the database share one writer (one process writes a SQLite file at a time anyway).

``submit`` hands over one commit (a generation's statements and position, as ``commit_batch`` takes them)
and returns once the projection's previous commit is durable: at most one commit per projection is in
flight, so memory holds at most one batch more. ``wait`` returns once everything handed over is durable
(before the generation being built is read or swapped in), raising the first error a commit met.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from archive.errors import ChatArchiveError, StoreError

from .viewdb import Statements
from .viewdb_backends import open_view_recorder

_PROJECT = str(Path(__file__).resolve().parent.parent)


class BackgroundWriter:
    def __init__(self, url: str):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (_PROJECT, os.environ.get("PYTHONPATH"))))}
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self._sent = self._done = 0
        self._last: dict[str, int] = {}  # projection -> the number of its last commit handed over

    def submit(self, projection: str, generation: int, position: int, statements: Statements) -> None:
        self._wait_until(self._last.get(projection, 0))
        try:
            pickle.dump((projection, generation, position, statements), self._process.stdin, pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
        except OSError as e:
            raise self._ended(e) from e
        self._sent += 1
        self._last[projection] = self._sent

    def wait(self) -> None:
        self._wait_until(self._sent)

    def _wait_until(self, number: int) -> None:
        while self._done < number:
            try:
                error = pickle.load(self._process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as e:
                raise self._ended(e) from e
            self._done += 1
            if error is not None:
                raise error

    def close(self) -> None:
        """End the process once it has written what it was given (its errors are ``wait``'s to raise)."""
        if self._process.stdin.closed:
            return
        try:
            self._process.stdin.close()
        except OSError:
            pass  # it has ended already
        self._process.wait()
        self._process.stdout.close()

    def _ended(self, error: BaseException) -> StoreError:
        self._process.poll()
        return StoreError(f"the view writer process ended (exit status {self._process.returncode}): {error!r}")


def _serve(url: str, source: BinaryIO, sink: BinaryIO) -> None:
    recorder, close = open_view_recorder(url)
    # Reading (and unpickling) the next commit while this one is written keeps the parent from
    # blocking on a full pipe behind a long commit.
    pending: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [pending.put(item) for item in _items(source)] + [pending.put(None)],
                     daemon=True).start()
    try:
        while (item := pending.get()) is not None:
            projection, generation, position, statements = item
            try:
                recorder.commit_batch(projection, generation, position, statements, building=True)
                result = None
            except ChatArchiveError as e:
                result = e
            pickle.dump(result, sink)
            sink.flush()
    finally:
        close()


def _items(source: BinaryIO) -> Iterator[tuple]:
    while True:
        try:
            yield pickle.load(source)
        except EOFError:
            return


if __name__ == "__main__":
    # The rebuilding process decides what an interrupt ends; this one ends when its input does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Standard output carries the answers: anything else printed goes to standard error.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.argv[1], sys.stdin.buffer, answers)
