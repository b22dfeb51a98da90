"""Which archived room a name stands for: JIDs are not case-sensitive, so Lobby@Conference.example.org
names the archived lobby@conference.example.org. One rule for the API's room endpoints, the CLI and imports."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from .errors import InvalidQueryError, NotFoundError


class RoomNames:
    """The archived rooms, looked up by a name in any case."""

    def __init__(self, rooms: Iterable[str]):
        self.rooms = sorted(set(rooms))  # a room named by two sources (the store's and an index's) is one
        self._exact = set(self.rooms)
        # Rooms differing only in case (older imports brought both): a name in neither's case takes the first in
        # JID order.
        self._folded = {room.lower(): room for room in reversed(self.rooms)}

    def named(self, name: str) -> str | None:
        """The archived room ``name`` names: itself, else the room of that JID in another case; None if none."""
        return name if name in self._exact else self._folded.get(name.lower())

    def given(self, name: str) -> list[str]:
        """The archived rooms a room a person typed names (the CLI's ROOM and ``--room``, as search's ``room:`` reads
        it): a JID in any case, or a bare name for every room of that name on any service. None is an error naming
        some rooms, not an empty answer (a typo would read as a room with nothing in it)."""
        wanted = name.strip()
        if "@" in wanted:
            room = self.named(wanted)
            matches = [room] if room is not None else []
        else:
            matches = [room for room in self.rooms if room.partition("@")[0].lower() == wanted.lower()]
        if not matches:
            some = ", ".join(self.rooms[:10]) or "none yet"
            raise NotFoundError(f"no archived room {name!r} (rooms: {some}{', ...' if len(self.rooms) > 10 else ''})")
        return matches

    def one(self, name: str) -> str:
        """The one archived room ``name`` names (``given``), for a command that reads one room: a bare name that
        several rooms share is a bad argument naming them."""
        rooms = self.given(name)
        if len(rooms) > 1:
            raise InvalidQueryError(f"{name!r} names {len(rooms)} rooms ({', '.join(rooms)}): give its JID")
        return rooms[0]

    def add(self, room: str) -> None:
        """``room`` archived too (an import's new room, which its later lines may name in another case)."""
        if room in self._exact:
            return
        bisect.insort(self.rooms, room)
        self._exact.add(room)
        folded = room.lower()
        self._folded[folded] = min(self._folded.get(folded, room), room)
