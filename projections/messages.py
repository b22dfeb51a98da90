"""The message model: how posts, corrections and retractions make a message's lines.

Written once, pure, and used by every view that shows message text (the
transcript view, the search index, the widget, ``/state``, the exports and the
pages). A view keeps lines in its own storage and lends them to ``step``
through a ``Book``; ``step`` says which lines to write and which to drop.

Rules:

- A message is known in its room by every id of the post (stanza-id,
  origin-id, ``id`` attribute) and of each correction applied to it. A
  correction or retraction names one of them. A message the room gave the
  named id (``owned``: its stanza-id, or the stanza-id of a correction applied
  to it) is meant before any message that carries it only as a client id
  (origin-id, ``id`` attribute, or a correction's); among several of either
  kind (clients reuse ids), the one archived last. Clients choose their ids,
  the room its stanza-ids (the listener keeps only the room's): a post whose
  origin-id or ``id`` is another message's stanza-id must not take that
  message's moderation (XEP-0425 names the stanza-id), its author's retraction
  or correction, which real clients, matching stanza-ids, apply to the
  message.
- A correction (XEP-0308) applies only when it comes from the message's author
  (``same_author``): then the text it showed becomes a version, and the
  correction's ids join the message's, so a correction of a correction (a
  chain) and a retraction naming a correction's id both reach the message. A
  correction by somebody else is a line of its own (``corrects`` set).
- A retraction (XEP-0424, by the author) or moderation (XEP-0425, by a
  moderator: any message) removes the message; the first removal is kept. A
  self-retraction by somebody else changes nothing (``removes``). A post read
  from a tombstone in the room's archive has no text (``body`` None:
  ``text_of``); its removal follows it.
- A removal does not take a message that carries the id it names only as a
  client id, unless that message is the author's own (a retraction) or the room
  gave it no stanza-id (a moderation in a room without stanza-ids, which can
  name only clients' ids): it waits, as for a message not archived, for the
  message the room gave the id, which a backfill may bring later. Else a
  decoy, whose origin-id is the stanza-id of a message missed live, took the
  moderation of that message (or refused its author's retraction, which was
  then lost) whenever the decoy was archived first.
- Out of order (a backfill stores a correction or retraction before its
  message): a correction whose message is not archived is a message line of
  its own, and a retraction a ``retraction`` line (compliance view only), both
  ``awaiting`` the id they name. When a message with that id arrives, or a
  message gains it through a correction, the awaiting lines are applied to it
  in log order as if they had come after it, and dropped (a removal that does
  not take it, above, waits on). A retraction whose message never arrives
  stays visible to compliance as such a line.

Who is the author (XEP-0308 section 3, XEP-0421): the same occupant-id when both carry
one, else the same bare real JID when both carry one, else the same nick. A
nick change keeps the occupant-id and the real JID, so corrections and
retractions across it are accepted where the room reveals either; a room that
reveals neither cannot tell the renamed author from a newcomer, and refuses.
One rule for both: a self-retraction names its sender's real JID wherever a
correction does (the listener's), so a newcomer in the author's freed nick can
retract her message no more than correct it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

import msgspec

from archive import events as ev

from .lines import Line, Removal, Version, ids, text_capture

_LIVE = ev.Capture.LIVE
_POSTED = ev.MessagePosted


class Book(Protocol):
    """A view's lines, as the model needs to see them (including this step's own writes)."""

    def find(self, room: str, ref: str) -> Line | None:
        """The message line of ``room`` that ``ref`` names (``owns``: the newest the room gave it, else the newest
        known by it)."""

    def awaiting(self, room: str, ref: str) -> list[Line]:
        """The lines of ``room`` awaiting a message known by ``ref``, oldest first."""


class Changes(NamedTuple):
    put: list[Line]  # lines created or changed
    dropped: list[int]  # ids of the lines that awaited a message it settled, gone: applied to it, or refused
    # Those of ``dropped`` the message refused (a retraction not its author's): gone, changing nothing. Apart, as
    # a refused event is no part of the message (``projections.message_groups``).
    refused: tuple[int, ...] = ()


NOTHING = Changes([], [])
def step(position: int, event: ev.Event, book: Book) -> Changes:
    """What a message event (post, correction, retraction) does to the lines;
    NOTHING for any other event."""
    kind = type(event)
    if kind is ev.MessagePosted:
        return _settle(message_line(position, event), book, ids_of(event))
    if kind is ev.MessageCorrected:
        target = meant(event, book)
        if target is not None and applies(target, event):
            return _settle(correct(target, event, position), book, ids_of(event))
        line = correction_line(position, event, awaiting=target is None)
        return _settle(line, book, ids_of(event))
    if kind is ev.MessageRetracted:
        target = meant(event, book)
        verdict = None if target is None else applies(target, event)
        if verdict is None:
            return Changes([retraction_line(position, event)], [])
        if verdict and target.removed is None:
            return Changes([retract(target, removal_of(position, event))], [])
    return NOTHING


def named(event: ev.Event) -> str | None:
    """The id by which a correction or retraction names its message; None for any other event."""
    kind = type(event)
    if kind is ev.MessageCorrected:
        return event.replaces_id
    if kind is ev.MessageRetracted:
        return event.target_id
    return None


def meant(event: ev.MessageCorrected | ev.MessageRetracted, book: Book) -> Line | None:
    """The message line a correction or retraction means, applied to it or not (``Book.find``: the newest
    whose stanza-id it names, else the newest known by the id it names); None while there is none."""
    return book.find(event.room, named(event))


def applies(line: Line, event: ev.MessageCorrected | ev.MessageRetracted) -> bool | None:
    """The model's verdict on a correction or retraction for ``line``, the message line it means (``meant``): True,
    it applies (a removal of a message removed already too: accepted, and the first removal kept); False, refused
    (a correction by somebody else is a line of its own, a retraction not the author's changes nothing); None, a
    removal that waits for another line (``removes``)."""
    if type(event) is ev.MessageCorrected:
        return same_author(line, event.nick, event.jid, event.occupant_id)
    return removes(line, event.target_id, event.moderated, event.by_nick, event.by_jid, event.occupant_id)


def owned(line: Line, ref: str) -> bool:
    """Whether the room gave ``line`` the id ``ref``: its stanza-id, or a correction's applied to it."""
    return line.stanza_id == ref or ref in line.stanza_aliases


def owns(line: Line, ref: str) -> tuple[bool, int]:
    """How strongly ``line``, known by ``ref``, is meant by it: owned (``owned``) before carried as a client
    id, then the one archived last. Books compare candidates by it."""
    return owned(line, ref), line.id


def awaits_any(book: Book, room: str, refs: Iterable[str]) -> bool:
    """Whether a correction or retraction that came before its message awaits one known by any of ``refs``."""
    return any(book.awaiting(room, ref) for ref in refs)


def _settle(line: Line, book: Book, new_ids: list[str]) -> Changes:
    """``line`` with what awaited any of ``new_ids`` applied to it, and the lines applied."""
    if not awaits_any(book, line.room, new_ids):
        return Changes([line], [])  # nearly always: nothing awaits a new message
    put: dict[int, Line] = {}
    dropped: list[int] = []
    refused: list[int] = []
    todo = list(new_ids)
    seen: set[int] = {line.id}
    while todo:
        waiting = [w for ref in todo for w in book.awaiting(line.room, ref) if w.id not in seen]
        if not waiting:
            break
        waiting.sort(key=lambda w: w.id)
        todo = []
        for other in waiting:
            if other.id in seen:
                continue
            if other.kind == "retraction":
                verdict = removes(line, other.awaiting, other.removed.moderated, other.nick, other.jid, other.occupant_id)
                # None: not this line's to take or refuse. It waits on, and is asked again if a correction taken
                # in below gives the line the id as the room's (as it would be, had it come after them).
                if verdict is None:
                    continue
                seen.add(other.id)
                if verdict and line.removed is None:
                    line = retract(line, other.removed)
                elif not verdict:
                    refused.append(other.id)
                dropped.append(other.id)
                continue
            seen.add(other.id)
            if same_author(line, other.nick, other.jid, other.occupant_id):
                line = absorb(line, other)
                todo += ids(other)
                dropped.append(other.id)
            else:
                put[other.id] = msgspec.structs.replace(other, awaiting=None)
    put[line.id] = line
    return Changes(list(put.values()), dropped, tuple(refused))


def ids_of(event: ev.MessagePosted | ev.MessageCorrected) -> list[str]:
    return [ident for ident in (event.stanza_id, event.origin_id, event.message_id) if ident]


def client_ids(line: Line) -> tuple[str | None, ...]:
    """The ids a message line carries as a client chose them (None where it has none): its origin-id, ``id``
    attribute, the ids of the corrections applied to it but their stanza-ids (``owned``), and the id a
    correction line awaits (``lines.ids``)."""
    aliases = line.aliases
    if line.stanza_aliases:  # rare: only a corrected message
        aliases = tuple(ref for ref in aliases if ref not in line.stanza_aliases)
    return line.origin_id, line.message_id, *aliases, line.awaiting


def same_author(line: Line, nick: str | None, jid: str | None, occupant_id: str | None) -> bool:
    """Whether a correction or self-retraction by (nick, jid, occupant_id) comes from ``line``'s author."""
    if line.occupant_id and occupant_id:
        return line.occupant_id == occupant_id
    if line.jid and jid:
        return bare(line.jid) == bare(jid)
    if line.nick and nick:
        return line.nick == nick
    return True


def removes(line: Line, ref: str, moderated: bool, nick: str | None, jid: str | None,
            occupant_id: str | None) -> bool | None:
    """Whether a retraction or moderation naming ``ref`` by (nick, jid, occupant_id) removes ``line``, a message
    line known by ``ref`` (the one it means, or one that came to be known by ``ref`` while it waited): True
    (unless removed already: the first removal is kept), False (refused: nothing), or None: it waits for
    another (``retraction_line``).

    Moderators may remove any message (XEP-0425), authors only their own (XEP-0424, judged as corrections are:
    ``same_author``). A moderation names the stanza-id the room gave the message: a line carrying ``ref`` only
    as a client id (a decoy's origin-id, say, reusing the stanza-id of a message missed live) is not the one it
    means, and it waits for the line the room gave ``ref``, unless the room gave this line no stanza-id (a room
    without stanza-ids, an import: clients' ids are all a moderation can name there). A retraction by somebody
    else than the author of such a line waits too: the author's message the room gave ``ref`` may come."""
    if owned(line, ref):
        return moderated or same_author(line, nick, jid, occupant_id)
    if moderated:
        return None if line.stanza_id else True
    return True if same_author(line, nick, jid, occupant_id) else None


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def correct(line: Line, event: ev.MessageCorrected, position: int) -> Line:
    """``line`` showing the corrected text; the text it showed becomes a version."""
    return _corrected(line, event.body, event.occurred_at, position, _capture(event), ids_of(event), (event.stanza_id,))


def _corrected(line: Line, body: str, at, position: int, capture: str | None, new_ids: Iterable[str],
               room_ids: Iterable[str | None]) -> Line:
    """``line`` showing ``body``, known by ``new_ids`` too, owning ``room_ids`` (those the room gave) too."""
    previous = Version(body=line.body or "", at=line.edited_at or line.at, position=line.edit_position or line.id,
                       capture=text_capture(line))
    known = ids(line)
    return msgspec.structs.replace(
        line,
        body=body,
        edited=True,
        edited_at=at,
        edit_position=position,
        edit_capture=capture,
        versions=(*line.versions, previous),
        aliases=(*line.aliases, *(i for i in new_ids if i not in known)),
        stanza_aliases=(*line.stanza_aliases, *(i for i in room_ids if i and not owned(line, i))),
    )


def absorb(line: Line, correction: Line) -> Line:
    """``line`` after the correction line that awaited it (with its own corrections and removal)."""
    texts = [(v.body, v.at, v.position, v.capture) for v in correction.versions]
    texts.append((correction.body or "", correction.edited_at or correction.at, correction.edit_position or correction.id,
                  text_capture(correction)))
    for body, at, position, capture in texts:
        line = _corrected(line, body, at, position, capture, (), ())
    known = ids(line)
    room_ids = (correction.stanza_id, *correction.stanza_aliases)
    line = msgspec.structs.replace(
        line,
        aliases=(*line.aliases, *(i for i in ids(correction) if i not in known)),
        stanza_aliases=(*line.stanza_aliases, *(i for i in room_ids if i and not owned(line, i))),
    )
    if line.removed is None and correction.removed is not None:
        line = retract(line, correction.removed)
    return line


def retract(line: Line, removal: Removal) -> Line:
    return msgspec.structs.replace(line, removed=removal)


def removal_of(position: int, event: ev.MessageRetracted) -> Removal:
    return Removal(
        at=event.occurred_at,
        position=position,
        moderated=event.moderated,
        by_nick=event.by_nick,
        by_jid=event.by_jid,
        reason=event.reason,
        capture=_capture(event),
    )


def _capture(event: ev.Event) -> str | None:
    capture = event.capture
    return None if capture is _LIVE else capture.value


def message_line(position: int, e: ev.MessagePosted | ev.MessageCorrected) -> Line:
    capture = e.capture
    # By position (``Line``'s first fields, in its order, which only ever grows at the end): a rebuild makes
    # one for nearly every event, and naming 13 of 32 fields cost 0.37 us a line more (1.00 vs 0.63 us).
    return Line(
        position, e.room, e.occurred_at, "message", e.nick, e.jid, e.occupant_id, text_of(e), e.stanza_id,
        e.origin_id, e.message_id, e.thread if type(e) is _POSTED else None,  # a correction has no thread
        None if capture is _LIVE else capture.value,
    )


def text_of(e: ev.MessagePosted | ev.MessageCorrected):
    """The text a message line shows: None where the archive does not know it (a post read from a tombstone,
    ``MessagePosted.body_kept``), which every view shows as a removed message's."""
    body = e.body
    if not body and type(e) is _POSTED and not e.body_kept:
        return None
    return body


def correction_line(position: int, event: ev.MessageCorrected, *, awaiting: bool) -> Line:
    """A correction not applied to a message: shown as a message of its own."""
    return msgspec.structs.replace(
        message_line(position, event),
        edited=True,
        edited_at=event.occurred_at,
        corrects=event.replaces_id,
        awaiting=event.replaces_id if awaiting else None,
    )


def retraction_line(position: int, event: ev.MessageRetracted) -> Line:
    """A retraction whose message is not archived (yet), or that waits past a line not its to take or refuse
    (``removes``): compliance sees who removed what, and when."""
    capture = event.capture
    return Line(
        id=position,
        room=event.room,
        at=event.occurred_at,
        kind="retraction",
        nick=event.by_nick,
        jid=event.by_jid,
        occupant_id=event.occupant_id,
        capture=None if capture is _LIVE else capture.value,
        removed=removal_of(position, event),
        awaiting=event.target_id,
    )
