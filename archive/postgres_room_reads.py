"""Room page reads of the PostgreSQL recorder (``archive.postgres_recorder``): a room in version order, and
a room's time range as two walks of the log's indexes merged."""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL

from .recorders import BEFORE_ANY_SECOND, RangeRow, RoomRow, range_params


class PostgresRoomReads:
    """Room page reads of the PostgreSQL recorder (its ``datastore`` and ``_events`` table name)."""

    def select_room(self, oid: str, after: RoomRow | None, limit: int) -> list[RoomRow]:
        """A stream's rows in version order after ``after`` (the last row of the page before): its walk of the
        order index goes on from there."""
        sql = SQL(
            "SELECT notification_id, originator_version, state, high FROM {} "
            "WHERE originator_id=%s AND (high, originator_version)>(%s, %s) ORDER BY high, originator_version LIMIT %s"
        ).format(self._events)
        seek = (BEFORE_ANY_SECOND, 0) if after is None else (after[3], after[1])
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(sql, [oid, *seek, limit])
            return [
                (row["notification_id"], row["originator_version"], bytes(row["state"]), row["high"])
                for row in curs.fetchall()
            ]

    def select_room_range(
        self, oid: str, after: tuple[int, int] | None, limit: int, t_from: float | None, t_to: float | None
    ) -> list[RangeRow]:
        with self.datastore.transaction(commit=False) as curs:
            _merge_walks(curs)
            curs.execute(self._room_range_sql(), _range_params(oid, after, limit, t_from, t_to))
            return [
                (row["notification_id"], row["originator_version"], bytes(row["state"]), row["second"])
                for row in curs.fetchall()
            ]

    def explain_room_range(self, *args: Any) -> str:
        """The query plan of a ``select_room_range`` page (tests and the bench show it)."""
        with self.datastore.transaction(commit=False) as curs:
            _merge_walks(curs)
            curs.execute(SQL("EXPLAIN ") + self._room_range_sql(), _range_params(*args))
            return "\n".join(row["QUERY PLAN"] for row in curs.fetchall())

    def _room_range_sql(self) -> SQL:
        # Two walks from where the last page stopped, merged in the room's order (a Merge Append, nothing
        # sorted): the events in order (at their second in the order index: ``high`` is their second) and the
        # late ones (in their own index). Each walk ordered in its own parentheses: a UNION ALL in a subquery
        # is planned as an Append of unordered scans, sorted.
        walk = (
            "(SELECT notification_id, originator_version, state, {by} AS second FROM {{log}} "
            "WHERE originator_id=%(room)s AND ({by}, originator_version) > (%(second)s, %(version)s) "
            "AND {by} <= %(last)s AND {which} AND occurred_at>=%(lo)s AND occurred_at<%(hi)s "
            "ORDER BY {by}, originator_version)"
        )
        return SQL(
            walk.format(by="high", which="second=high") + " UNION ALL "
            + walk.format(by="second", which="second<high") + " ORDER BY 4, 2 LIMIT %(limit)s"
        ).format(log=self._events)


def _merge_walks(curs: Any) -> None:
    # A room's range estimated small (a new room, stale statistics) is planned as both walks appended and sorted,
    # which reads the whole rest of the range for every page: the walks are merged whatever the estimate.
    curs.execute("SET LOCAL enable_sort = off", prepare=True)


def _range_params(*args: Any) -> dict[str, Any]:
    return dict(zip(("room", "second", "version", "last", "lo", "hi", "limit"), range_params(*args)))
