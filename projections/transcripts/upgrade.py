"""In-place upgrade of a transcript view made before late lines (``view``'s ``late`` column and ``lines_changed``).

Such a view (made by chat-archive before 3a04ef2) holds every row a rebuild of its log makes, but for ``late``,
and indexes the widget's feed by ``lines_rev`` (room, rev) over every line. Its projection upgrades it as it
starts (``TranscriptProjection``, the live generation), in one transaction holding the generations' lock
(``ViewRecorderMixin.upgrade``): ``late`` is added (0) and set to 1 for the rows ``RoomTops`` marks, read in
the order of ids (the rule itself, not a second one in SQL); ``lines_changed`` is made and ``lines_rev``
dropped. A crash or an error leaves the older layout, which the next start upgrades; readers see either
layout whole (SQLite's snapshot; PostgreSQL's ALTER TABLE holds the table until the commit). The added column
comes after ``fields``, and keeps its DEFAULT 0 (SQLite adds no NOT NULL column without one): every statement
names its columns. Views older still (lines as maps, ids not bucketed) are left to the rebuild they ask for.
"""

from __future__ import annotations

from collections.abc import Callable

from ..viewdb import Upgrade
from . import view as layout  # by the module: it calls this one

DROP_LINES_REV = "DROP INDEX IF EXISTS {lines_rev}"  # the index ``lines_changed`` replaces
PAGE = 100_000  # rows read at a time: not every row of a large view held at once


LAYOUT_THIS, LAYOUT_BEFORE_LATE_LINES, LAYOUT_OLDER = "this", "before late lines", "older"


def layout_of(columns: Callable[[str], set[str]]) -> str:
    """The layout of a transcript view whose tables have ``columns(table)``: this one, the one just before late
    lines (it lacks ``late`` only), or an older one (it lacks more)."""
    lines = columns("lines")
    if not ({"fields", "awaiting"} <= lines and "bucket" in columns("refs") and columns("rooms")):
        return LAYOUT_OLDER
    return LAYOUT_THIS if "late" in lines else LAYOUT_BEFORE_LATE_LINES


def made_before_late_lines(columns: Callable[[str], set[str]]) -> bool:
    return layout_of(columns) == LAYOUT_BEFORE_LATE_LINES


def add_late_lines(view: Upgrade) -> bool:
    """Upgrade ``view`` if it is of the layout just before late lines; True if it was."""
    if not made_before_late_lines(view.columns):
        return False
    view.execute("ALTER TABLE {lines} ADD COLUMN late INTEGER NOT NULL DEFAULT 0")
    view.executemany("UPDATE {lines} SET late=1 WHERE id=?", _late(view))
    for statement in (*layout.QUERY_DDL, DROP_LINES_REV):  # as a rebuild makes them: any missing is made
        view.execute(statement)
    return True


def _late(view: Upgrade) -> list[tuple[int]]:
    """The ids of the late lines: every room from its first line (``RoomTops`` with no committed room)."""
    tops, late, after = layout.RoomTops(set(), None), [], -1
    while found := view.select("SELECT id, room, ts FROM {lines} WHERE id>? ORDER BY id LIMIT ?", (after, PAGE)):
        flags = tops.late([row["room"] for row in found], [row["ts"] for row in found])
        late += [(row["id"],) for row, flag in zip(found, flags) if flag]
        after = found[-1]["id"]
    return late
