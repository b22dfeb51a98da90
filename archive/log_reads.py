"""The event store's reads of the whole log in global order (``EventStore`` inherits them): decoded
events page by page, and the pages projections read (``read_log_page``), which they decode themselves.
"""

from __future__ import annotations

import sqlite3
import sys
from array import array
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import msgspec
import psycopg
import psycopg.rows
from eventsourcing.persistence import PersistenceError
from psycopg import sql as pg_sql

from .codec import from_msgpack
from .events import Recorded
from .store_errors import store_error

# SQLite's page as one row too: the positions as a JSON array, the states joined (a blob read as text keeps its
# bytes, cast back to a blob). Row by row, the driver let go of the interpreter lock around each row's step and
# took it back after: a read-ahead thread (``projections.readahead``) then waited for the applying thread at
# every row, so that a page was read while the applying thread waited for it, not beside it. In one step,
# SQLite builds the page without the lock. Both aggregates take the rows in the order of the sorted subquery
# (a co-routine feeding them in its order; SQLite before 3.44 has no ORDER BY inside an aggregate).
_SQLITE_LOG_PAGE = (
    "SELECT json_group_array(position), CAST(group_concat(state, '') AS BLOB) "
    "FROM (SELECT rowid AS position, state FROM {} WHERE rowid>? ORDER BY rowid LIMIT ?)"
)
# A page as values the server joins: its first position and its count, the states as one msgpack array (its
# header, then the states, each a msgpack value), and the positions as one buffer of big-endian 64-bit numbers
# only where they are not first, first + 1, ... (a gap: a transaction that took numbers and rolled back). Row by
# row, the driver made a tuple, an int and a bytes object per event, and the projection a decoder call per
# state: 1M events' reading and decoding in the process applying them, interleaved at load 4.2-4.4, CPU
# 1.31-1.49 -> 0.78-0.83 s. The buffer of positions, made for every page, was a fifth of the reading backend's
# CPU (a number sent and joined per row: 1M events read in pages of 2,000, 0.87-0.90 -> 0.66-0.70 s at load 1.5-1.9; a page with
# a gap costs what every page did); the subquery that makes it runs only where the CASE reaches it (an
# InitPlan, evaluated when first used), on the statement's own snapshot.
# The aggregates take the rows in the order of the sorted subquery, the way PostgreSQL's documentation of
# aggregates gives for ordering their input (it warns of a join or grouping above the subquery, which could
# reorder its rows: there is none, and its LIMIT keeps the aggregation above it, in one process). An ORDER BY in
# each aggregate (PostgreSQL 15 sorts its input again, a copy of every state) cost the reading backend a quarter
# of a 1M-event read's CPU (median 3.39 -> 2.44 s, five interleaved runs each at load 7.5-9).
_POSTGRES_LOG_PAGE = pg_sql.SQL(
    "SELECT min(notification_id), count(*), "
    "CASE WHEN max(notification_id) - min(notification_id) < count(*) THEN NULL ELSE ("
    "SELECT string_agg(int8send(notification_id), ''::bytea) FROM (SELECT notification_id FROM {table} "
    "WHERE notification_id>%(after)s ORDER BY notification_id LIMIT %(limit)s) gapped) END, "
    "'\\xdd'::bytea || int4send(count(*)::int4) || string_agg(state, ''::bytea) "
    "FROM (SELECT notification_id, state FROM {table} WHERE notification_id>%(after)s ORDER BY notification_id "
    "LIMIT %(limit)s) page"
)
_EMPTY_ARRAY = b"\x90"


class LogPage(NamedTuple):
    """One page of the log: the events' positions, and their stored states as one msgpack array
    (``codec.from_msgpack_array`` decodes it); no positions at the end of the log."""

    positions: Sequence[int]
    states: bytes


class LogReads:
    """The log of the store over ``self._recorder`` (an archive recorder), read in global order."""

    def read_log(self, after: int = 0, *, page_size: int = 1000) -> Iterator[Recorded]:
        """Every event after global position ``after``, in log order, page by page."""
        for _, record in self.read_log_versions(after, page_size=page_size):
            yield record

    def read_log_versions(self, after: int = 0, *, page_size: int = 1000) -> Iterator[tuple[int, Recorded]]:
        """Every event after global position ``after`` with its version in its stream, in log order, page by page."""
        while True:
            try:
                page = self._recorder.select_notifications(after, page_size, inclusive_of_start=False)
            except PersistenceError as e:
                raise store_error("could not read the log", e) from e
            for notification in page:
                yield notification.originator_version, Recorded(notification.id, from_msgpack(notification.state))
            if len(page) < page_size:
                return
            after = page[-1].id

    def read_log_page(self, after: int = 0, limit: int = 1000) -> LogPage:
        """The page of at most ``limit`` events after ``after``, oldest first: for readers of the whole
        log (projections), who decode it in one call, with no object per event beyond the event's own."""
        recorder = self._recorder
        schema = getattr(recorder.datastore, "schema", None)  # PostgreSQL's datastore has one
        try:
            if schema is None:
                with recorder.datastore.transaction(commit=False) as c:
                    c.execute(_SQLITE_LOG_PAGE.format(recorder.events_table_name), (after, limit))
                    numbers, states = c.fetchone()
                if states is None:  # no rows: the aggregates are NULL (json_group_array's is '[]')
                    return LogPage([], _EMPTY_ARRAY)
                positions = _decode_positions(numbers)
                return LogPage(positions, b"".join((_array_header(len(positions)), states)))
            # One statement on the pool's connection (in autocommit: its own snapshot), not in a transaction:
            # BEGIN and ROLLBACK were two more round trips a page, each the driver's and the server's work.
            with recorder.datastore.get_connection() as conn:
                c = conn.cursor(row_factory=psycopg.rows.tuple_row)
                table = pg_sql.Identifier(schema, recorder.events_table_name)
                # Binary results: the buffers as bytes, without the server's hex text of them and the
                # driver's decoding of it.
                c.execute(_POSTGRES_LOG_PAGE.format(table=table), {"after": after, "limit": limit}, prepare=True,
                          binary=True)
                first, count, numbers, states = c.fetchone()
        except (PersistenceError, sqlite3.Error, psycopg.Error) as e:
            raise store_error("could not read the log", e) from e
        if not count:  # no rows: the other aggregates are NULL
            return LogPage([], _EMPTY_ARRAY)
        if numbers is None:  # no gap
            return LogPage(range(first, first + count), states)
        positions = array("q")
        positions.frombytes(numbers)
        if sys.byteorder == "little":
            positions.byteswap()
        return LogPage(positions, states)


_decode_positions = msgspec.json.Decoder(list[int]).decode


def _array_header(count: int) -> bytes:
    """A msgpack array of ``count`` values starts so (array 32, whatever the count)."""
    return b"\xdd" + count.to_bytes(4, "big")
