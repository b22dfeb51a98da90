"""Which archived room a name stands for: JIDs are not case-sensitive, so Lobby@Conference.example.org
names the archived lobby@conference.example.org. One rule for the API's room endpoints, the CLI and imports."""

from __future__ import annotations

import bisect
from collections.abc import Iterable


class RoomNames:
    """The archived rooms, looked up by a name in any case."""

    def __init__(self, rooms: Iterable[str]):
        self.rooms = sorted(rooms)
        self._exact = set(self.rooms)
        # Rooms differing only in case (older imports brought both): a name in neither's case takes the first in
        # JID order.
        self._folded = {room.lower(): room for room in reversed(self.rooms)}

    def named(self, name: str) -> str | None:
        """The archived room ``name`` names: itself, else the room of that JID in another case; None if none."""
        return name if name in self._exact else self._folded.get(name.lower())

    def add(self, room: str) -> None:
        """``room`` archived too (an import's new room, which its later lines may name in another case)."""
        if room in self._exact:
            return
        bisect.insort(self.rooms, room)
        self._exact.add(room)
        folded = room.lower()
        self._folded[folded] = min(self._folded.get(folded, room), room)
