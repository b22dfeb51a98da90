"""The message model's ``Book`` over the index: lines settled in memory before tantivy sees them.

The projection steps each event through the message model
(``projections.messages``) against this book. A new or changed line waits in
``pending`` for ``hold`` log positions before its document is written
(``due``): corrections and retractions mostly come soon after their message,
so they change a pending line rather than a written document, and most
documents are written once, final. A line changed after its document was
written is deleted by its ``key`` term (``take_deletes``, cheap: ``key`` is
indexed) and written again.

Finding the message an id names (``find``): the ids of the lines remembered
since ``covered_from`` are kept in memory, in two generations (the older is
forgotten at a commit once the newer holds ``window`` ids), stanza-ids apart
from client ids (the model means a line the room gave the id first: ``messages.owns``);
a line written and committed is then fetched by its key (``by_key``). Only an
id the memory does not hold, or held by a line older than ``covered_from`` (a
later line known by the same id may have been forgotten), or held only as a
client id where a forgotten line may own it (``OwnedIds``), costs a scan of the
committed index (``committed``): a message from long ago, or one never archived.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from operator import attrgetter

from archive.events import MessagePosted

from .. import memory_book, messages
from ..lines import Line, ids
from ..owned import OwnedIds
from .documents import decode_line

_id_of = attrgetter("id")
_NONE: dict[str, int] = {}  # a room's ids when the book knows none (never written to)


class IndexBook:
    def __init__(
        self,
        committed: Callable[[str, str], list[Line]],
        by_key: Callable[[int], Line | None],
        *,
        position: int,
        hold: int,
        window: int,
    ) -> None:
        # (room, ref, owned) -> committed message lines known by ref, owners first, each kind newest first
        # (only owners if owned)
        self._committed = committed
        self._by_key = by_key
        self.hold = hold
        self.window = window
        self.pending: dict[int, Line] = {}  # lines whose document is not written yet
        self._queue: deque[tuple[int, int]] = deque()  # (position a line became pending at, its id)
        self._written: dict[int, bytes] = {}  # lines written since the last commit (blobs): not searchable yet
        self._held: dict[int, Line] = {}  # lines awaiting a message, kept across commits
        self._awaited: dict[tuple[str, str], set[int]] = {}
        # room -> id -> line id, a dict per room (not one keyed by (room, id) tuples: no tuple made, hashed
        # and freed for each id of each post, which a rebuild does for nearly every event)
        self._refs = memory_book.room_ids()
        self._older_refs = memory_book.room_ids()
        self._owners = memory_book.room_ids()  # the same for the stanza-ids lines own
        self._older_owners = memory_book.room_ids()
        self._owned = OwnedIds(complete=position == 0)  # owners forgotten: those of older generations
        self._dropped: set[int] = set()  # since the last commit
        self._deletes: list[int] = []
        self.covered_from = self._current_from = position

    # -- the Book protocol ----------------------------------------------------------

    def find(self, room: str, ref: str) -> Line | None:
        line, sure = self._remembered(self._owners, self._older_owners, room, ref, True)
        owned = line is not None
        if not owned:
            line, sure_too = self._remembered(self._refs, self._older_refs, room, ref, False)
            sure = sure and sure_too
        newer = sure and line is not None and line.id >= self.covered_from
        if newer and (owned or self._owned.none_own(room, ref)):
            return line  # newer than any other of its kind forgotten, and no forgotten line outranks it
        for stored in self._committed(room, ref, owned or newer):
            current = self._unsearchable(stored.id) or stored
            if stored.id in self._dropped or ref not in ids(current):
                continue  # changed since it was committed: no longer known by ``ref``
            if line is None or messages.owns(stored, ref) > messages.owns(line, ref):
                line = current
            break
        return line

    def _remembered(self, known: dict, older: dict, room: str, ref: str, owned: bool) -> tuple[Line | None, bool]:
        """The newest line the memory holds owning ``ref`` (``owned``) or carrying it as a client id (``known``
        and ``older``: a generation of ``_owners`` or ``_refs`` each), and whether memory is sure of it."""
        line_id = known.get(room, _NONE).get(ref)
        if line_id is None:
            line_id = older.get(room, _NONE).get(ref)
            if line_id is None:
                return None, True
        line = None if line_id in self._dropped else self._line(line_id)
        if line is None or ref not in ids(line):
            # The line lost the id (a correction that stopped awaiting it when its message came, or one taken
            # into its message): the memory kept only the newest line known by it, so the others are looked for.
            return self._newest_unsearchable(room, ref, owned), False
        return line, True

    def awaiting(self, room: str, ref: str) -> list[Line]:
        if not self._awaited:  # as good as always: asked for every id of every message
            return []
        waiting = self._awaited.get((room, ref))
        return [self._held[i] for i in sorted(waiting)] if waiting else []

    # -- what the projection does with it -------------------------------------------------

    def post(self, position: int, event: MessagePosted) -> bool:
        """``apply(position, step(position, event, self))`` for a post that nothing awaits, the most common
        event of a log by far: its line pending, True. False, and nothing done, when something awaits it
        (``step`` settles that). Without the model's ``Changes`` and the calls between, a rebuild's main
        thread spends 2-3 us less per message (of 25-30)."""
        if self._awaited and messages.awaits_any(self, event.room, messages.ids_of(event)):
            return False
        self.pending[position] = memory_book.post_line(self._refs, self._owners, position, event)
        self._queue.append((position, position))
        return True

    def apply(self, position: int, changes: messages.Changes) -> None:
        """Take ``changes``, the model's step for the event at ``position``."""
        pending = self.pending
        for line_id in changes.dropped:
            self._forget_awaiting(line_id)
            self._dropped.add(line_id)
            if pending.pop(line_id, None) is None:
                self._deletes.append(line_id)
        for line in changes.put:
            line_id = line.id
            if line_id not in pending:
                if line_id != position:  # a line whose document is written: replaced when due
                    self._deletes.append(line_id)
                self._queue.append((position, line_id))
            pending[line_id] = line
            if self._held:  # as good as never: few lines await their message
                self._forget_awaiting(line_id)
            self._remember(line, line_id == position)

    def take_deletes(self) -> list[int]:
        """Keys of documents to delete before the next ``due`` lines are written."""
        deletes, self._deletes = self._deletes, []
        return deletes

    def due(self, position: int | None) -> list[Line]:
        """The pending lines to write now: those pending for ``hold`` positions before
        ``position``, or all (None: at a commit)."""
        out = []
        queue, pending = self._queue, self.pending
        limit = None if position is None else position - self.hold
        while queue and (limit is None or queue[0][0] <= limit):
            line = pending.pop(queue.popleft()[1], None)
            if line is not None:
                out.append(line)
        return out

    def written(self, lines: list[Line], blobs: list[bytes]) -> None:
        """``lines`` were written, as ``blobs`` (``documents.stored``)."""
        self._written.update(zip(map(_id_of, lines), blobs))

    def committed(self, position: int) -> None:
        """Everything written is committed at ``position``."""
        self._written.clear()
        self._dropped.clear()
        if sum(map(len, self._refs.values())) + sum(map(len, self._owners.values())) >= self.window:
            self._owned.forgot(self._older_owners)
            self._older_refs, self._refs = self._refs, memory_book.room_ids()
            self._older_owners, self._owners = self._owners, memory_book.room_ids()
            self.covered_from, self._current_from = self._current_from, position

    def hold_awaiting(self, line: Line) -> None:
        """A committed line awaiting its message (read when the index is opened)."""
        self._held[line.id] = line
        self._awaited.setdefault((line.room, line.awaiting), set()).add(line.id)

    # -- internals ------------------------------------------------------------------------

    def _line(self, line_id: int) -> Line | None:
        return self._unsearchable(line_id) or self._by_key(line_id)

    def _unsearchable(self, line_id: int) -> Line | None:
        """The line as it is now if the committed index does not show it so: pending, held or written since."""
        line = self.pending.get(line_id) or self._held.get(line_id)
        if line is not None:
            return line
        blob = self._written.get(line_id)
        return decode_line(blob) if blob is not None else None

    def _newest_unsearchable(self, room: str, ref: str, owned: bool) -> Line | None:
        """The newest message line owning ``ref`` (``owned``), else known by it (asked when none owns it), that
        the committed index does not show (rare: a look-up of an id a line lost); None if none."""
        # Each line as it is now (``_unsearchable``'s order): a line written and changed since is pending again,
        # and its written blob may still carry an id the line lost.
        current = {line_id: decode_line(blob) for line_id, blob in self._written.items()}
        current.update(self._held)
        current.update(self.pending)
        known = [line for line in current.values() if line.kind == "message" and line.room == room
                 and line.id not in self._dropped and ref in ids(line) and (not owned or messages.owned(line, ref))]
        return max(known, key=lambda line: line.id, default=None)

    def _remember(self, line: Line, new: bool) -> None:
        if line.awaiting:
            self.hold_awaiting(line)
        if line.kind != "message":
            return
        line_id, room, dropped = line.id, line.room, self._dropped
        owners, refs = self._owners[room], self._refs[room]
        older_owners, older_refs = self._older_owners.get(room, _NONE), self._older_refs.get(room, _NONE)
        known_by_ref = ((owners, older_owners, line.stanza_id),
                        *((refs, older_refs, ref) for ref in messages.client_ids(line)))
        if line.stanza_aliases:  # a corrected message: the room gave it its corrections' stanza-ids too
            known_by_ref += tuple((owners, older_owners, ref) for ref in line.stanza_aliases)
        for known_by, older, ref in known_by_ref:
            if not ref:
                continue
            known = None if new else known_by.get(ref, older.get(ref))  # new: newer than any other line
            if known is None or known < line_id or known in dropped:
                known_by[ref] = line_id

    def _forget_awaiting(self, line_id: int) -> None:
        line = self._held.pop(line_id, None)
        if line is not None:
            waiting = self._awaited[(line.room, line.awaiting)]
            waiting.discard(line_id)
            if not waiting:
                del self._awaited[(line.room, line.awaiting)]
