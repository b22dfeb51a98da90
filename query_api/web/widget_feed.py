"""The widget's live feed of a room: recent activity, then what happened since a cursor.

The transcript view commits about once a minute, too slowly for a live widget,
so the feed reads the room's own events from the store (by time, through the
store's per-room index) and turns them into lines with the transcript
projection's own pure functions (``projections.transcripts.logic``): the widget
shows exactly what an ordinary transcript shows, removed messages as
tombstones and corrections applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from archive import events as ev
from archive.events import Recorded
from archive.store import EventStore
from archive.times import format_time, utcnow
from projections.lines import Line, ids, shown
from projections.messages import MemoryBook, correction_line
from projections.transcripts import logic

SHOWN_KINDS = frozenset({"message", "joined", "left", "nick_changed", "subject_changed", "gap"})
MAX_ITEMS = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Events can reach the store a little after they occurred (batching, clock skew):
# each poll looks back this far and skips positions it has already seen.
LOOK_BACK = timedelta(minutes=2)


def item(line: Line) -> dict:
    """A line as the widget's script receives it (rendered there as text, never as markup)."""
    return {
        "id": line.id,
        "kind": line.kind,
        "at": format_time(line.at),
        "nick": line.nick,
        "body": line.body,
        "old_nick": line.old_nick,
        "removed": line.removed is not None,
        "edited": line.edited,
        "refs": ids(line),
    }


def fold(records: Iterable[Recorded]) -> list[Line]:
    """Lines made from ``records`` by the transcript's own logic, as the ordinary view shows them."""
    book = MemoryBook()
    for record in records:
        book.apply(logic.step(record.position, record.event, book))
    return sorted(shown(list(book.lines.values()), False), key=lambda line: (line.at, line.id))


def changes(records: Iterable[Recorded]) -> list[dict]:
    """What happened in ``records`` for a widget already showing earlier lines.

    New lines come as items; a correction or removal of a line shown before comes
    as ``{"kind": "corrected"|"removed", "target": ref, ...}`` for the script to
    apply (a correction it cannot place, it shows as a message of its own, as the
    transcript does).
    """
    records = list(records)
    lines = [line for line in fold(records) if line.kind in SHOWN_KINDS]
    out = [item(line) for line in lines if line.corrects is None]
    shown = {ref for entry in out for ref in entry["refs"]}
    for record in records:
        event = record.event
        if isinstance(event, ev.MessageCorrected) and event.replaces_id not in shown:
            out.append(
                {**item(correction_line(record.position, event, awaiting=False)), "kind": "corrected",
                 "target": event.replaces_id}
            )
        elif isinstance(event, ev.MessageRetracted) and event.target_id not in shown:
            out.append({"id": record.position, "kind": "removed", "target": event.target_id})
    return out


def recent(transcripts, room: str, *, limit: int = 50) -> tuple[list[dict], dict]:
    """The room's last ``limit`` shown lines (from the transcript view), and the cursor to poll on with.

    The cursor starts at the newest line, so the first ``since`` also picks up
    what the view has not committed yet.
    """
    lines = transcripts.page(room, direction="backward", limit=limit * 2).lines
    shown = [line for line in lines if line.kind in SHOWN_KINDS][-limit:]
    newest = max((line.at for line in lines), default=_EPOCH)
    cursor = {"p": max((line.id for line in lines), default=0), "t": newest.timestamp()}
    return [item(line) for line in shown], cursor


def valid_cursor(cursor: dict) -> bool:
    """Whether a (verified) cursor's position and time are in range: a time far from now cannot
    be turned into a datetime, and a look back that far would read the room's whole history."""
    p, t = cursor.get("p"), cursor.get("t")
    return (
        isinstance(p, int) and not isinstance(p, bool) and p >= 0
        and isinstance(t, (int, float)) and not isinstance(t, bool)
        and 0 <= t <= utcnow().timestamp() + 86400
    )  # fmt: skip


def since(store: EventStore, room: str, cursor: dict, *, now: datetime | None = None) -> tuple[list[dict], dict]:
    """Everything after ``cursor`` (from ``recent`` or an earlier ``since``), and the next cursor."""
    now = now or utcnow()
    seen, checked = int(cursor.get("p", 0)), datetime.fromtimestamp(float(cursor.get("t", 0)), timezone.utc)
    records = [r for r in store.read_room(room, start=checked - LOOK_BACK) if r.position > seen]
    next_cursor = _cursor(records, now)
    next_cursor["p"] = max(next_cursor["p"], seen)
    return changes(records)[-MAX_ITEMS:], next_cursor


def _cursor(records: list[Recorded], now: datetime) -> dict:
    return {"p": max((r.position for r in records), default=0), "t": now.timestamp()}
