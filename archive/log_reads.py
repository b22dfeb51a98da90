"""The event store's reads of the whole log in global order (``EventStore`` inherits them): decoded
events page by page, and the pages projections read (``read_log_rows``), which they decode themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import psycopg.rows
from eventsourcing.persistence import PersistenceError
from psycopg import sql as pg_sql

from .codec import from_msgpack
from .events import Recorded
from .store_errors import store_error

_SQLITE_LOG_ROWS = "SELECT rowid, state FROM {} WHERE rowid>? ORDER BY rowid LIMIT ?"
_POSTGRES_LOG_ROWS = pg_sql.SQL("SELECT notification_id, state FROM {} WHERE notification_id>%s ORDER BY notification_id LIMIT %s")


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

    def read_log_rows(self, after: int = 0, limit: int = 1000) -> list[tuple[int, bytes]]:
        """One page of the log after ``after``: (position, stored msgpack state) rows, oldest first.

        For readers of the whole log (projections): no object per row beyond the driver's own,
        and the caller decodes (``codec.from_msgpack``) only what it needs."""
        recorder = self._recorder
        schema = getattr(recorder.datastore, "schema", None)  # PostgreSQL's datastore has one
        try:
            with recorder.datastore.transaction(commit=False) as c:
                if schema is None:
                    c.execute(_SQLITE_LOG_ROWS.format(recorder.events_table_name), (after, limit))
                else:
                    c.row_factory = psycopg.rows.tuple_row
                    table = pg_sql.Identifier(schema, recorder.events_table_name)
                    # Binary results: the states come as bytes without the server's hex text of them and the
                    # driver's decoding of it (300k rows: client CPU 0.34 -> 0.15 s, wall 0.8 -> 0.46 s).
                    c.execute(_POSTGRES_LOG_ROWS.format(table), (after, limit), prepare=True, binary=True)
                return c.fetchall()
        except (PersistenceError, sqlite3.Error, psycopg.Error) as e:
            raise store_error("could not read the log", e) from e
