"""Room page reads of the SQLite recorder (``archive.sqlite_recorder``): a room in version order, and a room's
time range as two walks of the side index merged."""

from __future__ import annotations

from typing import Any

from .recorders import BEFORE_ANY_SECOND, RangeRow, RoomRow, range_params


class SQLiteRoomReads:
    """Room page reads of the SQLite recorder (its ``datastore`` and ``events_table_name``)."""

    def select_room(self, oid: str, after: RoomRow | None, limit: int) -> list[RoomRow]:
        """A stream's rows in version order after ``after`` (the last row of the page before): its walk of the
        side index goes on from there."""
        sql = (
            f"SELECT i.position, i.originator_version, e.state, i.high FROM archive_event_index i "
            f"JOIN {self.events_table_name} e ON e.rowid=i.position "
            "WHERE i.originator_id=? AND (i.high, i.originator_version)>(?, ?) ORDER BY i.high, i.originator_version LIMIT ?"
        )
        seek = (BEFORE_ANY_SECOND, 0) if after is None else (after[3], after[1])
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, (oid, *seek, limit))
            return [(row[0], row[1], row[2], row[3]) for row in c.fetchall()]

    def select_room_range(
        self, oid: str, after: tuple[int, int] | None, limit: int, t_from: float | None, t_to: float | None
    ) -> list[RangeRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._room_range_sql(), range_params(oid, after, limit, t_from, t_to))
            return [(row[0], row[1], row[2], row[3]) for row in c.fetchall()]

    def explain_room_range(self, *args: Any) -> str:
        """The query plan of a ``select_room_range`` page (tests and the bench show it)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("EXPLAIN QUERY PLAN " + self._room_range_sql(), range_params(*args))
            return "\n".join(row[3] for row in c.fetchall())

    def _room_range_sql(self) -> str:
        # Two walks from where the last page stopped, merged in the room's order: the events in order (at
        # their second in the key: ``high`` is their second) and the late ones (in their own index).
        walk = (
            "SELECT i.position, i.originator_version, {by} AS second FROM archive_event_index i {indexed}"
            "WHERE i.originator_id=?1 AND ({by}, i.originator_version) > (?2, ?3) AND {by} <= ?4 AND {which} "
            "AND i.occurred_at>=?5 AND i.occurred_at<?6"
        )
        return (
            "SELECT e.rowid, p.originator_version, e.state, p.second FROM ("
            + walk.format(indexed="", by="i.high", which="i.second=i.high")
            + " UNION ALL "
            + walk.format(indexed="INDEXED BY archive_event_late ", by="i.second", which="i.second<i.high")
            + f" ORDER BY 3, 2 LIMIT ?7) AS p CROSS JOIN {self.events_table_name} e ON e.rowid=p.position"
        )
