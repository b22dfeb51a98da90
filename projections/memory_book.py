"""The message model's book in memory (``MemoryBook``), as the transcript view and ``projections.message_groups``
fold with it, and the shortcuts a rebuild takes through it for the most common event, a plain post (``post_line``,
which the search index's book takes too)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from archive import events as ev
from archive.events import Recorded

from .lines import Line, ids
from .messages import Changes, awaits_any, client_ids, ids_of, owns
from .messages import owned as owned_by

_LIVE = ev.Capture.LIVE
_POSTED = ev.MessagePosted

NO_REFS: Mapping[str, int] = MappingProxyType({})  # the refs of a room a book knows no ids of (read only)


RoomIds = defaultdict  # room -> id -> line id (``room_ids``)


def room_ids() -> RoomIds:
    """A book's ids: a dict per room, made when first asked for (a ``defaultdict`` itself: a subclass of it
    is subscripted through a Python-level slot, 60M more instructions folding 100k events, callgrind). Not one
    keyed by (room, id): no tuple made, hashed and freed for each id of each post (a rebuild's every message):
    0.91 -> 0.31 us a post of two ids (timeit, 100k posts in 100 rooms, freeing included)."""
    return defaultdict(dict)


def post_line(refs: RoomIds, owners: RoomIds, position: int, event: ev.MessagePosted) -> Line:
    """A book's post shortcut: the post's line (``message_line``'s, made here: a rebuild makes one for nearly
    every event, and a call less: folding 100k events' posts 462M -> 402M instructions, callgrind), each of the
    event's ids now naming it in its room: its stanza-id in ``owners``, its client ids in ``refs`` (``remember``'s
    split). A post's line is newer than every line the book knows (positions grow), and its ids are the event's
    (no aliases: it awaits nothing). ``tests/projections/test_post_shortcut.py`` holds both books' shortcuts to
    the model's rule."""
    room, capture = event.room, event.capture
    stanza_id, origin_id, message_id = event.stanza_id, event.origin_id, event.message_id
    # Both of the room's dicts by subscript (``RoomIds`` makes a missing one): 4 bytecodes each, where ``get``
    # and a test for None were 9 for the one dict before owners were kept apart.
    room_refs, room_owners = refs[room], owners[room]
    if stanza_id:
        room_owners[stanza_id] = position
    if origin_id:
        room_refs[origin_id] = position
    if message_id:
        room_refs[message_id] = position
    body = event.body
    if not body and not event.body_kept:  # a tombstone's post (``messages.text_of``): asked of empty texts only
        body = None
    return Line(position, room, event.occurred_at, "message", event.nick, event.jid, event.occupant_id, body,
                stanza_id, origin_id, message_id, event.thread, None if capture is _LIVE else capture.value)


class MemoryBook:
    """A ``Book`` of the lines in memory; ``committed(room, ref, owned)`` (the view's stored message lines
    known by ``ref``: those the room gave it first, each kind newest first; only those if ``owned``) is
    asked for what memory misses. Lines awaiting a message are rare: a view keeps all of them in memory."""

    def __init__(self, committed=None) -> None:
        self.lines: dict[int, Line] = {}
        # room -> ref -> the newest line known by it: ``owners`` the lines the room gave it (``messages.owned``),
        # ``refs`` those carrying it as a client id (``client_ids``; ``find`` asks ``owners`` first).
        self.refs = room_ids()
        self.owners = room_ids()
        self.awaited: dict[tuple[str, str], set[int]] = {}
        self.dropped: set[int] = set()
        self._committed = committed
        # The last position ``committed`` may hold lines of, if the view knows it: a line in
        # memory created after it is newer than any there, so ``committed`` need not be asked.
        self.horizon: int | None = None

    def find(self, room: str, ref: str) -> Line | None:
        line_id = self._known(self.owners, room, ref, True)
        owned = line_id is not None
        if not owned:
            line_id = self._known(self.refs, room, ref, False)
        best = None if line_id is None else self.lines[line_id]
        if self._committed is None:
            return best
        # A line in memory created after the horizon is newer than any committed: an owner outranks them all,
        # a client id's line all but a committed owner.
        newer = best is not None and self.horizon is not None and line_id > self.horizon
        if owned and newer:
            return best
        for stored in self._committed(room, ref, owned or newer):
            if stored.id in self.dropped or ref not in ids(self.lines.get(stored.id, stored)):
                continue  # changed since it was committed: no longer known by ``ref``
            if best is None or owns(stored, ref) > owns(best, ref):
                best = self.lines.setdefault(stored.id, stored)
            break
        return best

    def _known(self, known: RoomIds, room: str, ref: str, owned: bool) -> int | None:
        """The newest line in memory ``known`` by ``ref`` (``owners`` or ``refs``)."""
        line_id = known.get(room, NO_REFS).get(ref)
        if line_id is not None and (line_id in self.dropped or ref not in ids(self.lines[line_id])):
            # The line lost the id (a correction that stopped awaiting it when its message came, or one
            # taken into its message): ``known`` kept only the newest line, so the others are looked for.
            line_id = self._newest_known(known, room, ref, owned)
        return line_id

    def _newest_known(self, known: RoomIds, room: str, ref: str, owned: bool) -> int | None:
        """The newest message line in memory owning ``ref`` (``owned``), else known by it (asked when none owns
        it) (rare: a look-up of an id a line lost)."""
        found = [line.id for line in self.lines.values() if line.kind == "message" and line.room == room
                 and line.id not in self.dropped and ref in ids(line) and (not owned or owned_by(line, ref))]
        refs = known[room]
        if not found:
            refs.pop(ref, None)
            return None
        refs[ref] = max(found)
        return max(found)

    def post_each(self, records: Iterable[Recorded], step: Callable[[int, ev.Event], None]) -> None:
        """``step`` and ``apply`` for each post of ``records`` that nothing awaits, the most common event of a
        log by far: its line remembered. Any other event, in its turn, is ``step(position, event)``'s.
        Without the ``Changes`` and the calls between: 100k events of a rebuild applied in 0.21 s, not 0.32.
        ``post_line`` for ``remember``: a post's ids are the event's (naming them so, before ``post_line`` made the line
        too: 3.7 -> 2.8 us a post, 200k events). A
        page's records in one loop, not a call for each: 7% fewer instructions applying a page's posts
        (callgrind, 100k events of the 1m corpus)."""
        lines, refs, owners = self.lines, self.refs, self.owners
        for record in records:
            position, event = record.position, record.event
            # ``awaited`` the first test: nearly always empty (``_settle`` applies what awaits a post).
            if type(event) is _POSTED and not (self.awaited and awaits_any(self, event.room, ids_of(event))):
                lines[position] = post_line(refs, owners, position, event)
            else:
                step(position, event)

    def awaiting(self, room: str, ref: str) -> list[Line]:
        awaited = self.awaited
        waiting = awaited.get((room, ref)) if awaited else None
        return [self.lines[i] for i in sorted(waiting)] if waiting else []

    def apply(self, changes: Changes) -> None:
        for line_id in changes.dropped:
            self._forget_awaiting(self.lines.pop(line_id, None))
            self.dropped.add(line_id)
        for line in changes.put:
            self._forget_awaiting(self.lines.get(line.id))
            self.remember(line)

    def remember(self, line: Line) -> None:
        line_id = line.id
        self.lines[line_id] = line
        if line.kind == "message":
            dropped, room, stanza_id = self.dropped, line.room, line.stanza_id
            owners, refs = self.owners[room], self.refs[room]
            known_by_ref = ((owners, stanza_id), *((refs, ref) for ref in client_ids(line)))
            if line.stanza_aliases:  # a corrected message: the room gave it its corrections' stanza-ids too
                known_by_ref += tuple((owners, ref) for ref in line.stanza_aliases)
            for known_by, ref in known_by_ref:
                known = known_by.get(ref)
                if ref and (known is None or known < line_id or known in dropped):
                    known_by[ref] = line_id
        if line.awaiting:
            self.awaited.setdefault((line.room, line.awaiting), set()).add(line.id)

    def _forget_awaiting(self, line: Line | None) -> None:
        if line is not None and line.awaiting:
            waiting = self.awaited.get((line.room, line.awaiting))
            if waiting is not None:
                waiting.discard(line.id)
                if not waiting:
                    del self.awaited[(line.room, line.awaiting)]
