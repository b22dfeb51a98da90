"""Transcript queries (what the API serves). Every result is a msgspec Struct.

``Transcripts(recorder, gap_positions)`` (get one from ``chat_archive.bootstrap.open_views``):

- ``page(room, *, start=None, end=None, cursor=None, direction="forward",
  limit=100, include_originals=False, reaching=True) -> TranscriptPage``: lines of ``room``
  with ``start <= at < end`` (either bound optional), in transcript order
  (``at``, then ``id``), led by the gap lines that began before ``start`` and
  reach into the range (``gaps_into``; ``reaching=False``: the range's own lines
  only, where a caller asks where lines are): a range inside a long gap says
  the archive may be missing events in it, on its first page, once.
  Without a cursor, ``forward`` starts at the beginning
  of the range and ``backward`` ends at its end (the latest lines). To page on,
  pass ``page.next_cursor`` with ``direction="forward"`` or
  ``page.prev_cursor`` with ``direction="backward"``; a cursor is None when
  there is nothing more that way. Lines are always returned oldest first.
- ``day(room, day, **same) -> TranscriptPage``: ``page`` over one UTC day
  (``day`` a ``date`` or ``"YYYY-MM-DD"``).
- ``context(room, ref, *, before=10, after=10, include_originals=False)
  -> TranscriptContext``: the line ``ref`` and up to ``before``/``after``
  lines around it, and (``gaps``) the gap lines that began before the first
  of them and reach into it.
- ``gaps_into(room, start, *, include_originals=False) -> list[Line]``: the gap
  lines of ``room`` that began before ``start``'s whole second and whose span
  meets the range from ``start`` (``projections.ranges.gap_meets``);
  ``gaps_meeting(room, start, end, ...)``: every gap line whose span meets
  ``[start, end)``.
- ``line(room, ref, *, include_originals=False) -> Line``.
- ``changed_before(room, before, *, include_originals=False) -> list[Line]``: the lines before
  ``before``'s whole second changed since they were made (or late), for range exports.
- ``changes(room, *, after=0, after_line=None, floor=None, limit=100, until=None) -> LineChanges`` and
  ``last_change(room)``: what changed in the ordinary view after a log position (the widget's live feed).

``ref`` is a line id (``int``, or a string of digits) or a message's
stanza-id, origin-id or ``id`` attribute: a string of digits that is no line's
id in the room is looked up as a message's id. ``include_originals=False`` is the
ordinary view (removed messages as tombstones: ``removed`` set, ``body``
None; no ``versions``); ``True`` is the compliance view (original text of
removed messages, every earlier version of corrected ones).
``limit`` is 1..1000. Bad arguments raise ``InvalidQueryError``, an unknown
line ``NotFoundError``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import date, datetime

import msgspec

from archive.errors import InvalidQueryError, NotFoundError, StoreError
from archive.times import parse_day

from ..ranges import gap_meets
from ..tables import from_micros, order_micros
from ..viewdb_backends import ViewRecorder
from ..lines import Line, compliance_only, from_stored, ordinary, shown
from .view import (CHANGED_OR_LATE, COMPLIANCE_ONLY, GONE, NAME, NO_TIME, OLDER_LAYOUT, ORDINARY, made_by_older_layout,
                   select_by_ref)

MAX_LIMIT = 1000
SECOND = 1_000_000  # in the view's ts (epoch microseconds)
ID_CHUNK = 500  # ids asked for in one statement (``gaps_into``)
NO_LINE = 2**63 - 1  # a feed's cursor without a line: after every line of its event
# A room's lines by its number (``view.RoomNumbers``), looked up in the statement: none for a room it lacks.
ROOM = "room=(SELECT id FROM {rooms} WHERE jid=?)"


class TranscriptPage(msgspec.Struct, kw_only=True):
    room: str
    lines: list[Line]
    next_cursor: str | None = None
    prev_cursor: str | None = None


class LineChanges(msgspec.Struct, kw_only=True):
    room: str
    lines: list[Line]
    gone: list[int]
    last: int  # the position of the last event read, and
    last_line: int | None  # the last line read of it (None: all of its lines): the next page begins after both,
    floor: int  # and none of its new lines is of an earlier ts than this (``changes``' ``floor``)


class TranscriptContext(msgspec.Struct, kw_only=True):
    room: str
    target: Line
    before: list[Line]
    after: list[Line]
    gaps: list[Line] = []  # the gap lines that began before the first line shown and reach into it: shown first


GapPositions = Callable[..., list[int]]
"""``presence.queries.Presence.gap_positions``: (room, *, ending_from, starting_before) -> the log positions of the
room's gaps that end at or after one moment and start before another."""


class Transcripts:
    def __init__(self, recorder: ViewRecorder, gap_positions: GapPositions):
        self.recorder = recorder
        # A gap line's ``ts`` is its start, and its end is in no column of its own: the presence view's gaps, indexed
        # by their ends, say which lines reach into a range from before it.
        self._gap_positions = gap_positions

    def _read(self, work):
        try:
            return self.recorder.read(NAME, work)
        except StoreError as e:
            # An API host may serve a view its projection host has not rebuilt yet (``OLDER_LAYOUT``).
            if made_by_older_layout(e):
                raise StoreError(OLDER_LAYOUT) from e
            raise

    def page(
        self,
        room: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        cursor: str | None = None,
        direction: str = "forward",
        limit: int = 100,
        include_originals: bool = False,
        reaching: bool = True,
    ) -> TranscriptPage:
        _check_limit(limit)
        if direction not in ("forward", "backward"):
            raise InvalidQueryError(f"direction must be forward or backward, not {direction!r}")
        if start and end and end <= start:
            raise InvalidQueryError("end must be later than start")
        key = decode_cursor(cursor) if cursor else None
        forward = direction == "forward"
        base, base_params = f"{ROOM} AND shown>=?", (room, COMPLIANCE_ONLY if include_originals else ORDINARY)
        lo = ("ts>=?", order_micros(start)) if start else None
        hi = ("ts<?", order_micros(end)) if end else None
        kept = [bound for bound in (lo, hi) if bound]
        where = " AND ".join([base, *(b[0] for b in kept)])
        params = [*base_params, *(b[1] for b in kept)]

        def after(edge_way: str, edge: tuple[int, int], *, inclusive: bool = False) -> tuple[str, tuple]:
            """Rows beyond ``edge`` that way (and the edge's own, ``inclusive``). The edge replaces the
            range's bound on its side, so that the index walk starts at the edge instead of filtering
            its way there."""
            if edge_way == ">" and lo and edge[0] < lo[1]:
                edge = (lo[1], -1)  # a cursor on a gap line reaching into the range: its own lines all lie beyond
            other = [b for b in ((hi,) if edge_way == ">" else (lo,)) if b]
            row_way = edge_way + ("=" if inclusive else "")
            clause = " AND ".join([base, f"ts{edge_way}=?", *(b[0] for b in other), f"(ts, id) {row_way} (?, ?)"])
            return clause, (*base_params, edge[0], *(b[1] for b in other), *edge)

        def work(query, _generation):
            order = "ts, id" if forward else "ts DESC, id DESC"
            if key is None:
                # The page starts at its range's own end: nothing in the range lies behind it.
                rows = query(
                    f"SELECT ts, id, fields FROM {{lines}} WHERE {where} ORDER BY {order} LIMIT ?", (*params, limit + 1)
                )
                return rows, False
            # Whether anything in the range lies behind the page is whether anything lies at or
            # behind the cursor (nothing lies between it and the page): asked in the page's own
            # statement, one round trip to PostgreSQL, one snapshot. That row sorts first.
            this_way, this_params = after(">" if forward else "<", key)
            back_way, back_params = after("<" if forward else ">", key, inclusive=True)
            back_order = "ts DESC, id DESC" if forward else "ts, id"
            rows = query(
                f"SELECT * FROM (SELECT ts, id, fields, 0 AS behind FROM {{lines}} WHERE {this_way} "
                f"ORDER BY {order} LIMIT ?) AS page UNION ALL SELECT * FROM (SELECT ts, id, fields, 1 AS behind "
                f"FROM {{lines}} WHERE {back_way} ORDER BY {back_order} LIMIT 1) AS back ORDER BY {order}",
                (*this_params, limit + 1, *back_params),
            )
            behind = bool(rows) and rows[0]["behind"] == 1
            return (rows[1:] if behind else rows), behind

        rows, behind = self._read(work)
        # (ts, id, the row or the line) in the page's order: the range's own lines, and where the page reaches
        # the range's start, the gap lines reaching into it from before, which sort before all of them.
        items: list[tuple[int, int, object]] = [(row["ts"], row["id"], row) for row in rows]
        if reaching and lo is not None and ((key is None or key[0] < lo[1]) if forward else len(rows) <= limit):
            gaps = [(order_micros(g.at), g.id, g) for g in self.gaps_into(room, start, include_originals=include_originals)]
            if forward:
                items[:0] = [g for g in gaps if key is None or g[:2] > key]
            else:
                items += [g for g in reversed(gaps) if key is None or g[:2] < key]
            behind = behind or (key is not None and any(g[:2] <= key if forward else g[:2] >= key for g in gaps))
        more = len(items) > limit
        items = items[:limit] if forward else list(reversed(items[:limit]))
        if not items:
            return TranscriptPage(room=room, lines=[])
        first, last = items[0][:2], items[-1][:2]
        has_next, has_prev = (more, behind) if forward else (behind, more)
        lines = [it if isinstance(it, Line) else from_stored(bytes(it["fields"])) for _, _, it in items]
        return TranscriptPage(
            room=room, lines=shown(lines, include_originals),
            next_cursor=encode_cursor(*last) if has_next else None, prev_cursor=encode_cursor(*first) if has_prev else None,
        )

    def day(self, room: str, day: date | str, **options) -> TranscriptPage:
        start, end = parse_day(day if isinstance(day, str) else day.isoformat())
        return self.page(room, start=start, end=end, **options)

    def context(
        self, room: str, ref: int | str, *, before: int = 10, after: int = 10, include_originals: bool = False
    ) -> TranscriptContext:
        if not (0 <= before <= MAX_LIMIT and 0 <= after <= MAX_LIMIT):
            raise InvalidQueryError(f"before and after must be 0..{MAX_LIMIT}")

        visible = f" AND shown>={COMPLIANCE_ONLY if include_originals else ORDINARY}"

        def work(query, _generation):
            target = _find(query, room, ref, include_originals)
            key = (order_micros(target.at), target.id)
            earlier = query(
                f"SELECT fields FROM {{lines}} WHERE {ROOM}{visible} AND (ts, id) < (?, ?) ORDER BY ts DESC, id DESC LIMIT ?",
                (room, *key, before),
            )
            later = query(
                f"SELECT fields FROM {{lines}} WHERE {ROOM}{visible} AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?",
                (room, *key, after),
            )
            return target, [from_stored(bytes(r["fields"])) for r in reversed(earlier)], [
                from_stored(bytes(r["fields"])) for r in later
            ]

        target, earlier, later = self._read(work)
        # The window begins at its first line unless it holds every line before the target: then the gaps that
        # began before that line and reach into it are said first (the cursor back from it reaches them later).
        first = target if before == 0 else earlier[0] if len(earlier) == before else None
        gaps = [] if first is None else self._gaps(room, first.at, None, (order_micros(first.at), first.id),
                                                   include_originals)
        return TranscriptContext(
            room=room,
            target=shown([target], include_originals)[0],
            before=shown(earlier, include_originals),
            after=shown(later, include_originals),
            gaps=gaps,
        )

    def gaps_into(self, room: str, start: datetime, *, include_originals: bool = False) -> list[Line]:
        """The gap lines of ``room`` before ``start``'s whole second (a page from ``start`` reads the lines of it)
        whose span meets the range from ``start`` (``ranges.gap_meets``), in transcript order: what every ranged
        read shows first (``page``, the exports)."""
        return self._gaps(room, start, None, (order_micros(start), -1), include_originals)

    def gaps_meeting(self, room: str, start: datetime | None, end: datetime | None, *,
                     include_originals: bool = False) -> list[Line]:
        """Every gap line of ``room`` whose span meets ``[start, end)`` (either bound None: open), in transcript
        order: what a search export says of a room it found nothing in."""
        return self._gaps(room, start, end, None, include_originals)

    def _gaps(self, room: str, start: datetime | None, end: datetime | None, key: tuple[int, int] | None,
              include_originals: bool) -> list[Line]:
        """The gap lines of ``room`` whose span meets ``[start, end)``, of those before ``key`` (ts, id) if given."""
        ids = self._gap_positions(room, ending_from=start, starting_before=from_micros(key[0] + SECOND) if key else end)
        if not ids:
            return []
        shown_at_least = COMPLIANCE_ONLY if include_originals else ORDINARY
        before = " AND (ts, id) < (?, ?)" if key else ""

        def work(query, _generation):
            rows = []
            for at in range(0, len(ids), ID_CHUNK):
                chunk = ids[at:at + ID_CHUNK]
                rows += query(
                    f"SELECT ts, id, fields FROM {{lines}} WHERE {ROOM} AND kind='gap' AND shown>=?{before} "
                    f"AND id IN ({', '.join('?' * len(chunk))})", (room, shown_at_least, *(key or ()), *chunk),
                )
            return sorted(rows, key=lambda row: (row["ts"], row["id"]))

        lines = [from_stored(bytes(row["fields"])) for row in self._read(work)]
        return shown([line for line in lines if gap_meets(line, start, end)], include_originals)

    def changes(self, room: str, *, after: int = 0, after_line: int | None = None, floor: int | None = None,
                limit: int = 100, until: int | None = None) -> LineChanges:
        """The ordinary view's lines of ``room`` created or changed by events after position
        ``after`` (or, with ``after_line``, the lines after that one of the event at ``after``), in the
        order of those events and then of lines, and where to go on from next time; ``gone`` lists the
        lines taken into others since (corrections that met their message). One event may change many
        lines (a message and the corrections awaiting it, taken into it): a page may end among them and
        the next begins after its last line. ``floor``: the ``floor`` of the page before (None: read here),
        a ts no line of the room created after the page's position and not late is earlier than.
        ``until``: no line an event after that position made or changed (they come on a later page): as far as
        another view the caller reads beside this one has come (the widget's author keys: the presence view).

        Two sets of rows make a page, which no row is in both of: the lines that no event changed since it
        made them and that are not late, read by ``lines_time`` from the floor on (of those, the ones created
        after the position come in the order of ids as of times: a room's own traffic since the cursor, never
        the archive's); and the other lines, by their partial index ``lines_changed``. One statement: on
        PostgreSQL two could see two commits."""
        _check_limit(limit)
        line = NO_LINE if after_line is None else after_line
        # The new lines after (after, line): those after the position, and the position's own if line is before it.
        newer_than = after - 1 if line < after else after
        until = NO_LINE if until is None else until  # a line last changed after it waits, whole, for a later page

        def work(query, _generation):
            low = floor
            if low is None:
                # The latest ts of the room's lines up to the position: no line created after it and not late
                # is earlier (a row keeps its ts, and none is made up to a position once it is read).
                top = query(f"SELECT ts FROM {{lines}} WHERE {ROOM} AND id<=? ORDER BY ts DESC, id DESC LIMIT 1",
                            (room, after))
                low = top[0]["ts"] if top else NO_TIME
            # Each part in its index's order, merged here: ordered by the statement, SQLite sorted both parts
            # (their blobs too) and a page of 200 lines cost it 1.6x the VM steps. rev<=id is rev=id (no line's rev
            # is below its id) as PostgreSQL's planner sees a third of rows pass, not 0.5%: with rev=id it read
            # every line after a cursor deep in a room (a bitmap scan, then a sort) instead of the page's in order.
            rows = query(
                f"SELECT * FROM (SELECT id, shown, rev, ts, fields FROM {{lines}} WHERE {ROOM} AND ts>=? AND id>? "
                "AND rev<=id AND id<=? AND late=0 ORDER BY ts, id LIMIT ?) AS created UNION ALL SELECT * FROM (SELECT "
                f"id, shown, rev, ts, fields FROM {{lines}} WHERE {ROOM} AND {CHANGED_OR_LATE} AND rev>=? AND rev<=? "
                "AND (rev, id) > (?, ?) ORDER BY rev, id LIMIT ?) AS changed",
                (room, low, newer_than, until, limit, room, after, until, after, line, limit),
            )
            return sorted(rows, key=_change_order)[:limit], low

        rows, low = self._read(work)
        return LineChanges(
            room=room,
            lines=[ordinary(from_stored(bytes(r["fields"]))) for r in rows if r["shown"] == ORDINARY],
            gone=[r["id"] for r in rows if r["shown"] == GONE],
            last=rows[-1]["rev"] if rows else after,
            last_line=rows[-1]["id"] if rows else after_line,
            # Each row read has an id <= the last position read, so a ts no later line not late is earlier than.
            floor=max([low, *(r["ts"] for r in rows)]),
        )

    def changed_before(self, room: str, before: datetime, *, include_originals: bool = False) -> list[Line]:
        """The lines of ``room`` of an earlier ``ts`` than ``before``'s (``page``'s first lines of a range from
        ``before`` are of its ``ts``) that an event changed after it made them, or that are late, in transcript
        order: where a range export (``projections.ranges``) finds the messages posted before its start and
        corrected or removed in it. Read by ``lines_changed``: a few lines of a room's thousands."""
        shown_at_least = COMPLIANCE_ONLY if include_originals else ORDINARY
        rows = self._read(lambda query, _: query(
            f"SELECT fields FROM {{lines}} WHERE {ROOM} AND {CHANGED_OR_LATE} AND ts<? AND shown>=? ORDER BY ts, id",
            (room, order_micros(before), shown_at_least),
        ))  # fmt: skip
        return shown([from_stored(bytes(r["fields"])) for r in rows], include_originals)

    def subject_at(self, room: str, at: datetime) -> Line | None:
        """The line that set the subject ``room`` had at ``at`` (None: never set before)."""
        rows = self._read(lambda query, _: query(
            f"SELECT fields FROM {{lines}} WHERE {ROOM} AND kind='subject_changed' AND ts<=? ORDER BY ts DESC, id DESC "
            "LIMIT 8", (room, order_micros(at)),
        ))  # fmt: skip
        return next((line for line in map(from_stored, (bytes(r["fields"]) for r in rows)) if line.at < at), None)

    def last_change(self, room: str) -> int:
        """The position of the last event that changed a line of ``room`` (0: none): of its latest line by
        (ts, id), the last created of those not late (no line created after it is, unless late), or of the
        lines changed or late (``changes``)."""
        rows = self._read(lambda query, _: query(
            f"SELECT MAX(rev) AS rev FROM (SELECT * FROM (SELECT rev FROM {{lines}} WHERE {ROOM} "
            "ORDER BY ts DESC, id DESC LIMIT 1) AS newest UNION ALL SELECT * FROM (SELECT rev FROM {lines} "
            f"WHERE {ROOM} AND {CHANGED_OR_LATE} ORDER BY rev DESC, id DESC LIMIT 1) AS changed) AS last",
            (room, room),
        ))  # fmt: skip
        return rows[0]["rev"] or 0

    def line(self, room: str, ref: int | str, *, include_originals: bool = False) -> Line:
        found = self._read(lambda query, _: _find(query, room, ref, include_originals))
        return shown([found], include_originals)[0]


def _find(query, room: str, ref: int | str, include_originals: bool) -> Line:
    """The line ``ref`` names: an int is a position; a string of digits the line at that position in the room if
    it has one (links made from search hits), else a message id (ejabberd's stanza-ids are decimal, and so are a
    client's counter ids); any other string a message id."""
    if isinstance(ref, int) or ref.isdecimal():  # what int() reads (isdigit takes superscripts too)
        rows = query(f"SELECT fields FROM {{lines}} WHERE {ROOM} AND id=? AND shown>{GONE}", (room, int(ref)))
        if rows:
            line = from_stored(bytes(rows[0]["fields"]))
            if include_originals or not compliance_only(line):
                return line
    if isinstance(ref, str):
        found = select_by_ref(query, room, ref)
        if found:
            return found[0]
    raise NotFoundError(f"no line {ref!r} in room {room}")


def _change_order(row) -> tuple[int, int]:
    return row["rev"], row["id"]


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQueryError(f"limit must be 1..{MAX_LIMIT}, not {limit}")


def encode_cursor(ts: int, line_id: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}:{line_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, line_id = text.split(":")
        return int(ts), int(line_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise InvalidQueryError(f"{cursor!r} is not a transcript cursor") from e
