"""In-place upgrade of a transcript view made before late lines (``view``'s ``late`` column and ``lines_changed``),
or before one-number ref keys (``refs``' ``ref_key``).

Such a view (made by chat-archive before 3a04ef2) holds every row a rebuild of its log makes, but for ``late``,
and indexes the widget's feed by ``lines_rev`` (room, rev) over every line. Its projection upgrades it as it
starts (``TranscriptProjection``, the live generation), in one transaction holding the generations' lock
(``ViewRecorderMixin.upgrade``): ``late`` is added (0) and set to 1 for the rows ``RoomTops`` marks, read in
the order of ids (the rule itself, not a second one in SQL); ``lines_changed`` is made and ``lines_rev``
dropped. A crash or an error leaves the older layout, which the next start upgrades; readers see either
layout whole (SQLite's snapshot; PostgreSQL's ALTER TABLE holds the table until the commit). The added column
comes after ``fields``, and keeps its DEFAULT 0 (SQLite adds no NOT NULL column without one): every statement
names its columns. Views older still (lines as maps, ids not bucketed) are left to the rebuild they ask for.

A view made before one-number ref keys (every view before late lines too) has ``refs`` of (bucket, ref, id):
they are copied into a table of (ref_key, id), the same rows (``refs.ref_key``), which then takes the old one's
name, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from ..viewdb import Upgrade
from . import view as layout  # by the module: it calls this one
from .refs import REFS, REFS_KEY, REFS_UNKEYED

DROP_LINES_REV = "DROP INDEX IF EXISTS {lines_rev}"  # the index ``lines_changed`` replaces
PAGE = 100_000  # rows read at a time: not every row of a large view held at once


LAYOUT_THIS, LAYOUT_BEFORE_REF_KEYS, LAYOUT_BEFORE_LATE_LINES, LAYOUT_OLDER = (
    "this", "before ref keys", "before late lines", "older")


def layout_of(columns: Callable[[str], set[str]]) -> str:
    """The layout of a transcript view whose tables have ``columns(table)``: this one, the one just before
    one-number ref keys (its refs are bucket, ref and id), the one before late lines (it lacks ``late`` too), or
    an older one (it lacks more)."""
    lines, refs = columns("lines"), columns("refs")
    if not ({"fields", "awaiting"} <= lines and refs & {"bucket", "ref_key"} and columns("rooms")):
        return LAYOUT_OLDER
    if "late" not in lines:
        return LAYOUT_BEFORE_LATE_LINES
    return LAYOUT_THIS if "ref_key" in refs else LAYOUT_BEFORE_REF_KEYS


def to_this_layout(view: Upgrade) -> bool:
    """Upgrade ``view`` if it is of a layout before this one that the projection upgrades; True if it was."""
    found = layout_of(view.columns)
    if found in (LAYOUT_THIS, LAYOUT_OLDER):
        return False
    if found == LAYOUT_BEFORE_LATE_LINES:
        _add_late_lines(view)
    if "bucket" in view.columns("refs"):
        _key_refs(view)
    return True


def _key_refs(view: Upgrade) -> None:
    """The refs of (bucket, ref, id) as rows of (ref_key, id) (``refs.ref_key``'s rule, in SQL), in a table that
    takes their table's name; keyed as a build keys them: where the store keys them after (PostgreSQL), the rows
    first, then the key: one sort, not a b-tree insert a row (a 1M-event view's upgrade 6.8-8.2 -> 2.6-4.9 s,
    load 6-7)."""
    after = view.keys_after_building
    view.execute((REFS_UNKEYED if after else REFS).replace("{refs}", "{refs_keyed}"))
    view.execute("INSERT INTO {refs_keyed} (ref_key, id) SELECT (bucket << 32) | ref, id FROM {refs}")
    view.execute("DROP TABLE {refs}")
    view.rename("refs_keyed", "refs")
    if after:
        view.execute(REFS_KEY)


def _add_late_lines(view: Upgrade) -> None:
    view.execute("ALTER TABLE {lines} ADD COLUMN late INTEGER NOT NULL DEFAULT 0")
    view.executemany("UPDATE {lines} SET late=1 WHERE id=?", _late(view))
    for statement in (*layout.QUERY_DDL, DROP_LINES_REV):  # as a rebuild makes them: any missing is made
        view.execute(statement)


def _late(view: Upgrade) -> list[tuple[int]]:
    """The ids of the late lines: every room from its first line (``RoomTops`` with no committed room)."""
    tops, late, after = layout.RoomTops(set(), None), [], -1
    while found := view.select("SELECT id, room, ts FROM {lines} WHERE id>? ORDER BY id LIMIT ?", (after, PAGE)):
        flags = tops.late([row["room"] for row in found], [row["ts"] for row in found])
        late += [(row["id"],) for row, flag in zip(found, flags) if flag]
        after = found[-1]["id"]
    return late
