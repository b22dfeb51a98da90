"""Rows sent to PostgreSQL by a binary COPY, formatted by the driver's C row formatter."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg.sql import SQL
from psycopg.types.string import BytesBinaryDumper


# The binary COPY format's header and trailer, written around the rows formatted here (``copy_rows``).
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
_COPY_TRAILER = b"\xff\xff"
_SEND_BYTES = 64 * 1024  # sent as it fills: the server inserts these rows while the next are formatted
try:  # the driver's C formatter of one row (psycopg 3.2+; a private name, hence the fallback)
    from psycopg._copy_base import format_row_binary
except ImportError:  # pragma: no cover (older psycopg: its public write_row, half as fast)
    format_row_binary = None


def copy_rows(curs: Any, statement: SQL | str, types: Sequence[str | int], chunks: Iterable[Iterable[tuple]]) -> None:
    # bytea columns take the driver's C dumper of ``bytes``: the one registered for the type by default
    # (``psycopg.Binary``'s, for either argument kind) is Python, half a microsecond a value.
    curs.adapters.register_dumper(bytes, BytesBinaryDumper)
    with curs.copy(statement) as copy:
        copy.set_types(types)
        if format_row_binary is None:
            for row in itertools.chain.from_iterable(chunks):
                copy.write_row(row)
            return
        # The driver's C formatter of a row, called directly: ``write_row`` wraps it in two Python calls
        # and a buffer check per row (~0.35 us an event of the client's ~7.5).
        transformer, buffer = copy.formatter.transformer, bytearray(_COPY_SIGNATURE)
        for rows in chunks:
            for row in rows:
                format_row_binary(row, transformer, buffer)
                if len(buffer) > _SEND_BYTES:
                    copy.write(buffer)
                    buffer = bytearray()
        buffer += _COPY_TRAILER
        copy.write(buffer)
