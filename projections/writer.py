"""A rebuild's commits written by another process, while this one reads and applies the next batch.

A rebuild spends about as long in the view database (inserts, commits) as in Python applying the log,
and a write holds the GIL between rows, so a thread cannot overlap the two: a process can. The writer
is ``python -P -m projections.writer`` (the view database's URL in its environment), holding its own
connection to the view database; the projections of a rebuild that share the database share one writer
(one process writes a SQLite file at a time anyway).

``submit`` hands over one commit (a generation's statements and position, as ``commit_batch`` takes them)
and returns once the projection's commit before the previous one is durable: at most ``IN_FLIGHT`` (two)
commits per projection are in flight, so memory holds at most two batches more. ``wait`` returns once everything handed over is durable
(before the generation being built is read or swapped in), raising the first error a commit met. A commit
goes into the writer's pipe from a thread of its own (``_send``), while the rebuilding process applies on.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import msgspec

from archive.errors import ChatArchiveError, StoreError

from .columns import Columns, MsgpackColumn, Statements
from .viewdb_backends import open_view_recorder

_PROJECT = str(Path(__file__).resolve().parent.parent)
_LENGTH = 8
_COLUMNS = 1  # the msgpack extension type of ``Columns``
# A ``MsgpackColumn`` among them goes as a list of its arrays after this mark, each array as it is (not
# joined first: a buffer of a commit's every line, fresh pages each commit).
_MSGPACK_COLUMN = msgspec.msgpack.Ext(2, b"")
_ONE_VALUE, _SAME_COLUMN = 3, 4  # the extension types of a column of integers all equal, and of one given again


def _pack(value: Any) -> msgspec.msgpack.Ext:
    """``Columns`` as an extension: a column of integers as one buffer of 64-bit numbers (others as
    a list), which this process packs and the writer unpacks in one C loop each: decoding rows as
    lists of numbers was a quarter of the writer's time. A column is packed when its first value is an
    ``int`` (a ``bool`` is not: a column of them goes as a list, and stays ``bool``); its values come back
    as ``int``. A column of integers all equal (each an ``int`` or ``bool``) goes as its value and length,
    and one given again (the same list: a rebuild's ``rev`` is its ``id``) as the number of the first: a
    rebuild's commits hold several (none late, none awaiting), and packing each number is the cost
    (``_packed``)."""
    if not isinstance(value, Columns):
        raise NotImplementedError(f"cannot send {type(value).__name__}")
    columns = []
    packed: dict[int, int] = {}  # the id of each column of integers -> where it first is
    for column in value.columns:
        if type(column) is MsgpackColumn:
            columns.append([_MSGPACK_COLUMN, *column.arrays])
        elif column and type(column[0]) is int:
            first = packed.setdefault(id(column), len(columns))
            columns.append(_packed(column) if first == len(columns) else msgspec.msgpack.Ext(_SAME_COLUMN, _place(first)))
        else:  # a list goes as it is (a copy of a line's every blob cost a pass over the column)
            columns.append(column if type(column) is list else list(column))
    return msgspec.msgpack.Ext(_COLUMNS, _encode(columns))


def _packed(column: Sequence[int]) -> bytes | list | msgspec.msgpack.Ext:
    """A column of integers as one buffer; by ``struct``, not ``array("q", column)``, which parses a format
    string for each number it converts (~290 instructions a number by callgrind, a dozen numbers a message
    line with its refs: 5% of a rebuild's main process). A column of one value as that value and its length."""
    try:
        first = column[0]
        # The last first: most are not. Equal is not enough (1.0 == 1): only what struct packs as a number may go
        # as one, as the column would have gone without the shortcut. The sum of integers and booleans is an
        # ``int``, and one of a float, Decimal or Fraction among them is not: tested in C, not a type made for each
        # value (``set(map(type, column))`` was 2.3% of a 200k-event rebuild's applying thread, callgrind).
        if column[-1] == first and column.count(first) == len(column) and type(sum(column)) is int:
            return msgspec.msgpack.Ext(_ONE_VALUE, struct.pack("qq", first, len(column)))
        return struct.pack(f"{len(column)}q", *column)
    except struct.error:  # not all integers (None), or wider than 64 bits
        return list(column)


_PLACE = struct.Struct("I")  # a column's number among its ``Columns``
_place = _PLACE.pack


class _SameAs(NamedTuple):
    column: int  # the number of an earlier column of the same ``Columns``


def _unpack(code: int, data: memoryview) -> Any:
    if code == _MSGPACK_COLUMN.code:
        return MsgpackColumn
    if code == _ONE_VALUE:
        value, count = struct.unpack("qq", data)
        return array("q", [value]) * count
    if code == _SAME_COLUMN:
        return _SameAs(*_PLACE.unpack(data))
    if code != _COLUMNS:
        raise NotImplementedError(f"unknown extension type {code}")
    columns: list = []
    for sent in _decode_list(data):
        columns.append(columns[sent.column] if type(sent) is _SameAs else _column(sent))
    return Columns(*columns)


def _column(sent: bytes | list | array) -> Any:
    if isinstance(sent, bytes):
        return _numbers(sent)
    if sent and sent[0] is MsgpackColumn:
        return MsgpackColumn(sent[1:])
    return sent


def _numbers(packed: bytes) -> array:
    numbers = array("q")
    numbers.frombytes(packed)
    return numbers


# A commit goes as msgpack (a quarter of pickle's time to encode the rows, in the rebuilding process), after its
# length; answers (None or the error a commit met) as pickles.
_encode = msgspec.msgpack.Encoder(enc_hook=_pack).encode
_decode = msgspec.msgpack.Decoder(ext_hook=_unpack).decode
_decode_list = msgspec.msgpack.Decoder(list, ext_hook=_unpack).decode


# The view database's URL reaches the writer in its environment, which only its user can read: anyone on the
# host can read a command line, and a PostgreSQL URL may hold a password.
_URL_VARIABLE = "CHAT_ARCHIVE_VIEW_WRITER_URL"


# Commits of one projection handed over and not yet known durable, at most. Two, not one: a commit's way to
# durable (the pipe, the writer's decoding, COPY, the server's WAL flush) took longer now and then than applying
# the next batch, and the applying thread, the rebuild's critical path, waited for it (1M-event PostgreSQL
# rebuild, interleaved at load 13-17: its waits for the writer 0.83/1.89 -> 0.13/0.27 s); the writer catches up
# while the next batch is applied. The rebuild's last wait for the writer (``rebuild``) is on small commits
# (``ramped``).
IN_FLIGHT = 2


class BackgroundWriter:
    def __init__(self, url: str):
        pythonpath = os.pathsep.join(filter(None, (_PROJECT, os.environ.get("PYTHONPATH"))))
        env = {**os.environ, "PYTHONPATH": pythonpath, _URL_VARIABLE: url}
        # -P: not the working directory first on sys.path (as `-m` would put it), so that a `projections`
        # or `archive` there (an old checkout, someone else's directory) is never imported instead of ours.
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self._sent = self._done = 0
        self._handed: dict[str, list[int]] = {}  # projection -> the numbers of its commits not known durable
        self._outgoing: queue.Queue = queue.Queue(maxsize=1)  # encoded commits for ``_send``, then None
        self._unsent: BaseException | None = None  # what ended the writing into the pipe (``_send``)
        self._closed = False
        self._sender = threading.Thread(target=self._send, name="view writer input", daemon=True)
        self._sender.start()

    def submit(self, projection: str, generation: int, position: int, statements: Statements) -> None:
        handed = self._handed.setdefault(projection, [])
        while len(handed) >= IN_FLIGHT:
            self._wait_until(handed.pop(0))
        if self._unsent is not None:
            raise self._ended(self._unsent)
        self._outgoing.put(_encode((projection, generation, position, statements)))
        self._sent += 1
        handed.append(self._sent)

    def _send(self) -> None:
        """Write each commit handed over into the pipe. In this thread, not the one applying the log: a commit is
        megabytes and the pipe holds 64 KB, so the write waits for the writer to read it (0.3-0.45 s of a 1M-event
        PostgreSQL rebuild's applying thread, at load 4-5), and it holds no interpreter lock meanwhile. Once one
        fails (the writer has ended, or anything else) the rest are dropped and the pipe is closed, so that a
        writer given part of a commit ends instead of waiting for the rest: ``submit`` and ``_wait_until`` raise
        it, never wait for ever."""
        stdin = self._process.stdin
        while (commit := self._outgoing.get()) is not None:
            if self._unsent is not None:
                continue
            try:
                stdin.write(len(commit).to_bytes(_LENGTH, "big"))
                stdin.write(commit)
                stdin.flush()
            except BaseException as e:  # noqa: BLE001 - the applying thread raises it
                self._unsent = e
                with contextlib.suppress(OSError, ValueError):
                    stdin.close()

    def wait(self) -> None:
        self._wait_until(self._sent)

    def _wait_until(self, number: int) -> None:
        while self._done < number:
            try:
                error = pickle.load(self._process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as e:
                raise self._ended(self._unsent or e) from e
            self._done += 1
            if error is not None:
                raise error

    def close(self) -> None:
        """End the process once it has written what it was given (its errors are ``wait``'s to raise)."""
        if self._closed:
            return
        self._closed = True
        self._outgoing.put(None)  # after what it was given
        self._sender.join()
        with contextlib.suppress(OSError, ValueError):  # it has ended already, or ``_send`` closed the pipe
            self._process.stdin.close()
        self._process.wait()
        self._process.stdout.close()

    def _ended(self, error: BaseException) -> StoreError:
        self._process.poll()
        return StoreError(f"the view writer process ended (exit status {self._process.returncode}): {error!r}")


def _serve(url: str, source: BinaryIO, sink: BinaryIO) -> None:
    recorder, close = open_view_recorder(url)
    # Reading (and decoding) the next commit while this one is written keeps the parent from
    # blocking on a full pipe behind a long commit.
    pending: queue.Queue = queue.Queue()
    threading.Thread(target=_read, args=(source, pending), daemon=True).start()
    try:
        while (item := pending.get()) is not None:
            if isinstance(item, StoreError):  # a commit it could not read: its answer says why
                result = item
            else:
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


def _read(source: BinaryIO, pending: queue.Queue) -> None:
    try:
        for item in _items(source):
            pending.put(item)
    except Exception as e:  # noqa: BLE001 - decoding it: the rebuild must hear why
        pending.put(StoreError(f"the view writer could not read a commit: {e!r}"))
    finally:
        pending.put(None)  # the end of the input, whole or cut off (the rebuilding process died): stop


def _items(source: BinaryIO) -> Iterator[list]:
    while len(length := source.read(_LENGTH)) == _LENGTH:
        yield _decode(source.read(int.from_bytes(length, "big")))


if __name__ == "__main__":
    # The rebuilding process decides what an interrupt ends; this one ends when its input does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # No cyclic collection: what this process makes is rows (not cyclic, freed as soon as written), and
    # collections as a commit's million lists are decoded would triple the time decoding takes.
    gc.disable()
    # Standard output carries the answers: anything else printed goes to standard error.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(os.environ[_URL_VARIABLE], sys.stdin.buffer, answers)
