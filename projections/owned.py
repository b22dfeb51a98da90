"""Which stanza-ids the lines a book forgot own: the message model means a line owning an id (one the room
gave it: its stanza-id, a correction's) before any carrying it as a client id (``messages.owns``), so a book that finds only a line of the
latter kind in memory must know whether a forgotten (committed) line owns the id. Asking the view for every
correction (they name client ids) would make a rebuild wait for its writer process each time, and key the refs
of a PostgreSQL build early; this answers from memory for the lines forgotten in this process.

It keeps the book's own dicts of owned ids as they were forgotten (``RoomIds``, room -> stanza-id -> line id):
nothing is copied, hashed or sorted again (a set of the ids cost 330 instructions an id, sorted arrays of their
hashes 2,400: callgrind, 900k ids in 11 commits), at the price of memory: the ids stay alive, ~100 bytes a
message for as long as the view is built (~90 MB for a 1M-event rebuild). Bounded (``MOST``): past it, the
dicts go and the view is asked, as for a view not built from empty here (right, slower: a look-up each
correction that names a client id), so a rebuild of a far larger archive needs no more memory than ~MOST ids.
"""

from __future__ import annotations

from collections.abc import Mapping

MERGED = 16  # forgotten dicts looked through at most (a look-up asks each): more are merged into the oldest
MOST = 5_000_000  # stanza-ids kept at most (~500 MB)


class OwnedIds:
    """The stanza-ids of forgotten lines, by room. ``complete``: every line the view holds was forgotten here
    (a view built from empty), so an id absent is owned by none; otherwise nothing is ruled out (the view is
    asked)."""

    def __init__(self, complete: bool) -> None:
        self.complete = complete
        self._forgotten: list[Mapping[str, dict[str, int]]] = []
        self._kept = 0  # ids

    def forgot(self, owners: Mapping[str, dict[str, int]]) -> None:
        """``owners`` (room -> the stanza-ids owned there, a book's, no longer changed) are forgotten by it."""
        if not self.complete:
            return
        self._kept += sum(map(len, owners.values()))
        if self._kept > MOST:
            self.complete, self._forgotten = False, []
            return
        forgotten = self._forgotten
        forgotten.append(owners)
        if len(forgotten) > MERGED:
            oldest = forgotten[0]
            for newer in forgotten[1:]:
                for room, owned in newer.items():
                    oldest[room].update(owned)  # each id merged once: into the oldest, never out of it
            del forgotten[1:]

    def none_own(self, room: str, ref: str) -> bool:
        """Whether no forgotten line of ``room`` owns ``ref`` (False where the view may hold lines not forgotten
        here)."""
        return self.complete and not any(ref in owners.get(room, ()) for owners in self._forgotten)
