"""The widget's live feed of a room, read from the transcript view: recent lines, then
what changed since a cursor.

The view keeps, for every line, the log position of the event that last changed it
(``rev``): the cursor is that position (signed by the caller, ``query_api.signing``), with the
ts no line created since is earlier than unless late (``Transcripts.changes``' floor) and its room,
and a poll reads the lines changed after it in that order, through an index, a
page of at most MAX_ITEMS at a time. New lines, corrections and removals all come
as the line itself, as the ordinary transcript shows it (removed messages as
tombstones, corrections applied); a correction line that met its message since is
sent as ``{"id": N, "kind": "gone"}``. The widget is as fresh as the transcript
view (``[projections] commit_interval``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

from archive.times import format_time
from projections.lines import Line, ids
from projections.messages import bare
from projections.transcripts.queries import Transcripts

SHOWN_KINDS = frozenset({"message", "joined", "left", "nick_changed", "subject_changed", "gap"})
MAX_ITEMS = 200


def item(line: Line, secret: bytes) -> dict:
    """A line as the widget's script receives it (rendered there as text, never as markup)."""
    return {
        "id": line.id,
        "kind": line.kind,
        "at": format_time(line.at),
        "nick": line.nick,
        # With the nick, who wrote the line as the message model tells authors apart (``same_author``): the
        # widget, once joined, applies the room's live corrections and retractions by the same rule. The real
        # JID stays withheld, as from every reader but compliance: ``author`` stands for it.
        "occupant_id": line.occupant_id,
        "author": author_key(secret, line.room, line.jid),
        "body": line.body,
        "old_nick": line.old_nick,
        "removed": line.removed is not None,
        "edited": line.edited,
        "refs": ids(line),
        # Of ``refs``, those the room assigned: the post's and its corrections' stanza-ids (the model means the
        # line owning an id before one carrying it as a client id, and a moderation only a line owning it:
        # ``messages.owns``, ``messages.removes``), as the widget's live items carry theirs.
        "stanza_id": line.stanza_id,
        "stanza_aliases": list(line.stanza_aliases),
    }


def author_key(secret: bytes, room: str, jid: str | None) -> str | None:
    """What stands for a line's bare real JID in the feed (None without one): equal for equal JIDs of one room,
    so the widget compares authors where the message model compares JIDs, but keyed by the server's secret, so
    a visitor can neither test a guessed JID against it nor match one person's lines across rooms (the room is
    hashed in). 96 bits: a collision (one author taken for another) is out of reach."""
    if not jid:
        return None
    mac = hmac.new(secret, b"widget author\0" + room.encode() + b"\0" + bare(jid).encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:12]).decode()


def recent(transcripts: Transcripts, room: str, *, secret: bytes, limit: int = 50) -> tuple[list[dict], dict]:
    """The room's last ``limit`` shown lines (``secret``: ``author_key``'s), and the cursor to poll on with."""
    last = transcripts.last_change(room)  # before the page: a change in between comes again, never lost
    lines = transcripts.page(room, direction="backward", limit=limit * 2).lines
    shown = [line for line in lines if line.kind in SHOWN_KINDS][-limit:]
    return [item(line, secret) for line in shown], {"r": last}


def since(transcripts: Transcripts, room: str, cursor: dict, *, secret: bytes,
          limit: int | None = None) -> tuple[list[dict], dict]:
    """What changed after ``cursor`` (from ``recent`` or an earlier ``since``), at most ``limit`` lines
    (``MAX_ITEMS``), and the next cursor."""
    # The floor of a cursor of this room's (one an older server issued has none; one of another room's is
    # not this room's): else ``changes`` reads it.
    floor = cursor.get("t") if cursor.get("k") == room_key(room) else None
    changes = transcripts.changes(room, after=cursor["r"], after_line=cursor.get("i"), floor=floor,
                                  limit=MAX_ITEMS if limit is None else limit)
    items = [{"id": line_id, "kind": "gone"} for line_id in changes.gone]
    items += [item(line, secret) for line in changes.lines if line.kind in SHOWN_KINDS]
    state = {"r": changes.last, "t": changes.floor, "k": room_key(room)}
    return items, state if changes.last_line is None else {**state, "i": changes.last_line}


def room_key(room: str) -> int:
    """What binds a cursor to its room: a checksum, not the JID (up to 3 kB)."""
    return zlib.crc32(room.encode())


def valid_cursor(cursor: dict) -> bool:
    """Whether a (verified) cursor holds a log position, and if any, a line's id ("i": the last line read of
    that position's event), a ts ("t": ``changes``' floor) and its room's key ("k")."""
    return (_count(cursor.get("r")) and ("i" not in cursor or _count(cursor["i"]))
            and ("t" not in cursor or _int(cursor["t"], -(2**63))) and ("k" not in cursor or _count(cursor["k"])))


def _count(value) -> bool:
    return _int(value, 0)


def _int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < 2**63
