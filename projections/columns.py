"""The rows a projection's commit writes: column by column (``Columns``), blobs as msgpack arrays
(``MsgpackColumn``), as (statement, rows) pairs (``Statements``) that a view recorder (``viewdb``) or a
rebuild's writer process (``projections.writer``) executes in one commit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

import msgspec


class Columns:
    """Rows given column by column (each a list of one column's values, all of one length), for
    executemany: a rebuild's writer process is handed them as a column of integers packed in one
    buffer, not a row as a list of numbers, which it would build again (``projections.writer``)."""

    __slots__ = ("columns",)

    def __init__(self, *columns: Sequence[Any]):
        if len({len(column) for column in columns}) > 1:  # zip would cut every row to the shortest
            raise ValueError(f"columns of different lengths: {[len(column) for column in columns]}")
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def __iter__(self) -> Iterator[tuple]:
        return zip(*self.columns)


class MsgpackColumn(Sequence[bytes]):
    """A column of blobs that are each one msgpack value, held as msgpack arrays of them (``arrays``, ``len``
    values in all; a row's blob is its value's bytes): encoded an array a call, not into a buffer of its own
    for each value, and sent to a rebuild's writer process as they are (``projections.writer``), which binds
    them without decoding each value into bytes first (``values``: ``viewdb_backends``)."""

    __slots__ = ("arrays", "_count", "_values")

    def __init__(self, arrays: list[bytes], count: int | None = None):
        """``count``: the number of values, where the maker knows it (else found by decoding them)."""
        self.arrays = arrays
        self._values: list[msgspec.Raw] | None = None
        self._count = len(self.values()) if count is None else count

    def values(self) -> list[msgspec.Raw]:
        """Each value's bytes, as a view of its array (by the buffer protocol)."""
        if self._values is None:
            self._values = list(chain.from_iterable(map(_raw_values, self.arrays)))
        return self._values

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> bytes:
        return bytes(self.values()[index])

    def __iter__(self) -> Iterator[bytes]:
        return map(bytes, self.values())


_raw_values = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode

# (statement, rows) pairs executed with executemany inside one commit.
Statements = list[tuple[str, Sequence[Sequence[Any]] | Columns]]
