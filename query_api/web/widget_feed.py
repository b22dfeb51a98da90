"""The widget's live feed of a room, read from the transcript view: recent lines, then
what changed since a cursor.

The view keeps, for every line, the log position of the event that last changed it
(``rev``): the cursor is that position (signed by the caller, ``query_api.signing``), with the
ts no line created since is earlier than unless late (``Transcripts.changes``' floor) and its room,
and a poll reads the lines changed after it in that order, through an index, a
page of at most MAX_ITEMS at a time. New lines, corrections and removals all come
as the line itself, as the ordinary transcript shows it (removed messages as
tombstones, corrections applied); a correction line that met its message since is
sent as ``{"id": N, "kind": "gone"}``.

Each line's author is told by a key of the occupant's stay (``author_key``), which the presence view knows:
the feed goes only as far as both views have come, and is as fresh as they are (``[projections]
commit_interval``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

from archive.times import format_time
from projections.lines import Line, ids
from projections.messages import bare
from projections.presence.queries import Presence
from projections.transcripts.queries import Transcripts

SHOWN_KINDS = frozenset({"message", "joined", "left", "nick_changed", "subject_changed", "gap"})
MAX_ITEMS = 200


def item(line: Line, secret: bytes, stay: int | None) -> dict:
    """A line as the widget's script receives it (rendered there as text, never as markup); ``stay``: the
    presence view's stay its author was in then (``author_key``)."""
    return {
        "id": line.id,
        "kind": line.kind,
        "at": format_time(line.at),
        "nick": line.nick,
        # With the nick, who wrote the line as the message model tells authors apart (``same_author``): the
        # widget, once joined, applies the room's live corrections and retractions by the same rule. The real
        # JID stays withheld, as from every reader but compliance: ``author`` stands for it, within one stay.
        "occupant_id": line.occupant_id,
        "author": author_key(secret, line, stay),
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


def author_key(secret: bytes, line: Line, stay: int | None) -> str | None:
    """What stands for a line's bare real JID in the feed (None without one): a keyed hash of the room, the JID
    and the occupant's stay (``stay``: the presence view's, ``presence.logic.stay_at``; None: in no stay it
    knows, and the key is the line's own), so equal for one occupant's lines from joining to leaving, renamed
    or not, as the room itself shows them. Not one key of the JID: in a room that hides real JIDs from its
    occupants it would tell any visitor that "alice" who left and "anon42" who came are one person (the
    presence chart refuses that link too). The widget tells authors by it where the model compares JIDs,
    within a stay. Keyed by the server's secret, so a visitor can neither test a guessed JID against it nor
    match one person's lines across rooms (the room is hashed in). 96 bits: a collision (one author taken for
    another) is out of reach."""
    if not line.jid:
        return None
    scope = b"stay %d" % stay if stay is not None else b"line %d" % line.id
    mac = hmac.new(secret, b"widget author\0" + line.room.encode() + b"\0" + bare(line.jid).encode() + b"\0" + scope,
                   hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:12]).decode()


def items(presence: Presence, room: str, lines: list[Line], secret: bytes) -> list[dict]:
    """``lines`` of ``room`` as the widget receives them, each with its author's stay."""
    keyed = [line for line in lines if line.jid]
    stays = presence.stays_at(room, [(line.nick, line.jid, line.at, line.kind == "left") for line in keyed])
    stay_of = {line.id: stay for line, stay in zip(keyed, stays)}
    return [item(line, secret, stay_of.get(line.id)) for line in lines]


def recent(transcripts: Transcripts, room: str, *, presence: Presence, secret: bytes,
           limit: int = 50) -> tuple[list[dict], dict]:
    """The room's last ``limit`` shown lines (``secret``: ``author_key``'s), less those the presence view has
    not come to (``presence``: it tells their stays; they come with the next poll), and the cursor to poll on
    with."""
    reached = presence.position()  # first: the stays read after it hold at least its events'
    last = min(transcripts.last_change(room), reached)  # before the page: a change in between comes again
    lines = transcripts.page(room, direction="backward", limit=limit * 2).lines
    shown = [line for line in lines if line.kind in SHOWN_KINDS][-limit:]
    return items(presence, room, [line for line in shown if line.id <= reached], secret), {"r": last}


def since(transcripts: Transcripts, room: str, cursor: dict, *, presence: Presence, secret: bytes,
          limit: int | None = None) -> tuple[list[dict], dict]:
    """What changed after ``cursor`` (from ``recent`` or an earlier ``since``), at most ``limit`` lines
    (``MAX_ITEMS``), and the next cursor; no further than the presence view has come (a line it has not
    reached comes on a later poll: its stay is not known yet, and a guess, the stay its nick had, might be
    the one before, linking the two)."""
    reached = presence.position()
    # The floor of a cursor of this room's (one an older server issued has none; one of another room's is
    # not this room's): else ``changes`` reads it.
    floor = cursor.get("t") if cursor.get("k") == room_key(room) else None
    changes = transcripts.changes(room, after=cursor["r"], after_line=cursor.get("i"), floor=floor,
                                  limit=MAX_ITEMS if limit is None else limit, until=reached)
    sent = [{"id": line_id, "kind": "gone"} for line_id in changes.gone]
    sent += items(presence, room, [line for line in changes.lines if line.kind in SHOWN_KINDS], secret)
    state = {"r": changes.last, "t": changes.floor, "k": room_key(room)}
    return sent, state if changes.last_line is None else {**state, "i": changes.last_line}


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
