"""Which archived room a name stands for: JIDs are not case-sensitive, so Lobby@Conference.example.org
names the archived lobby@conference.example.org. One rule for the API's room endpoints and the CLI."""

from __future__ import annotations

from collections.abc import Iterable


class RoomNames:
    """The archived rooms, looked up by a name in any case."""

    def __init__(self, rooms: Iterable[str]):
        self.rooms = sorted(rooms)
        self._exact = frozenset(self.rooms)
        # Rooms differing only in case (an import can bring both): a name in neither's case takes the first in JID order.
        self._folded = {room.lower(): room for room in reversed(self.rooms)}

    def named(self, name: str) -> str | None:
        """The archived room ``name`` names: itself, else the room of that JID in another case; None if none."""
        return name if name in self._exact else self._folded.get(name.lower())
