"""What the listener knows about one room: who is present, the subject, the last archived message.

A ``RoomView`` is a fold of the room's archive events, so the same code rebuilds
it from the store at start-up and keeps it current while listening. The
translator reads it (to tell a join from a status change, to close out
occupants) and never writes it; the listener applies the translator's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from archive import events as ev


@dataclass(frozen=True)
class Occupant:
    nick: str
    jid: str | None = None
    role: str | None = None
    affiliation: str | None = None
    show: str | None = None
    status: str | None = None
    occupant_id: str | None = None


@dataclass
class RoomView:
    room: str
    occupants: dict[str, Occupant] = field(default_factory=dict)
    subject: str | None = None
    last_stanza_id: str | None = None  # the room's id of the newest archived message
    last_message_at: datetime | None = None
    last_event_at: datetime | None = None  # recorded_at of the newest event
    destroyed: bool = False
    first_join_pending: bool = False  # discovered, but its first join (and import) never completed
    purged: bool = False  # holds no event, but its stream held some once: all expired and purged (retention)
    replaying: bool = False  # between sending the join and the subject, which ends the room's history replay
    seen: set[str] = field(default_factory=set)  # occupants announced during this join
    jids: dict[str, str] = field(default_factory=dict)  # occupant-id -> real JID, of everyone seen with both
    # The removals archived: (id named, by whom: ``_remover``), for ``knows_removal``.
    removals: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def from_events(cls, room: str, events: Iterable[ev.Event]) -> RoomView:
        view = cls(room)
        for event in events:
            view.apply(event)
        return view

    def apply(self, event: ev.Event) -> None:
        if self.last_event_at is None or event.recorded_at > self.last_event_at:
            self.last_event_at = event.recorded_at
        handler = _APPLY.get(type(event))
        if handler:
            handler(self, event)

    def knows_removal(self, removal: ev.MessageRetracted, post: ev.MessagePosted) -> bool:
        """Whether the archive holds ``removal`` of ``post`` already: a moderation naming its stanza-id (XEP-0425
        names the room's id; only the room sends them), or a retraction by its author naming any of its ids
        (anyone may send one, naming any id)."""
        who = _remover(removal)
        if removal.moderated:
            named = (removal.target_id,)
        else:
            named = (i for i in (post.stanza_id, post.message_id, post.origin_id) if i)
        return any((ident, who) in self.removals for ident in named)

    def begin_join(self) -> None:
        self.replaying = True
        self.seen = set()


def _joined(view: RoomView, e: ev.OccupantJoined) -> None:
    view.destroyed = False
    view.occupants[e.nick] = Occupant(e.nick, e.jid, e.role, e.affiliation, e.show, e.status, e.occupant_id)
    if e.occupant_id and e.jid:
        view.jids[e.occupant_id] = e.jid


def _left(view: RoomView, e: ev.OccupantLeft) -> None:
    view.occupants.pop(e.nick, None)


def _presence(view: RoomView, e: ev.PresenceChanged) -> None:
    if e.nick in view.occupants:
        view.occupants[e.nick] = replace(view.occupants[e.nick], show=e.show, status=e.status)


def _nick(view: RoomView, e: ev.NickChanged) -> None:
    old = view.occupants.pop(e.old_nick, None) or Occupant(e.old_nick, e.jid, occupant_id=e.occupant_id)
    view.occupants[e.new_nick] = replace(old, nick=e.new_nick)


def _role(view: RoomView, e: ev.RoleChanged) -> None:
    if e.nick in view.occupants:
        view.occupants[e.nick] = replace(view.occupants[e.nick], role=e.role)


def _affiliation(view: RoomView, e: ev.AffiliationChanged) -> None:
    if e.nick in view.occupants:
        view.occupants[e.nick] = replace(view.occupants[e.nick], affiliation=e.affiliation)


def _subject(view: RoomView, e: ev.SubjectChanged) -> None:
    view.subject = e.subject


def _message(view: RoomView, e: ev.MessagePosted | ev.MessageCorrected | ev.MessageRetracted) -> None:
    if view.last_stanza_id and not e.stanza_id:
        # The room stamps what it archives with its id: one without (a body-less retraction) is not in its archive,
        # and kept by an interrupted catch-up (catchup.written_on_interruption) it is newer than what was caught up.
        return
    # Backfilled messages may be applied after newer live ones: keep the newest.
    if view.last_message_at is None or e.occurred_at >= view.last_message_at:
        view.last_message_at = e.occurred_at
        if e.stanza_id:
            view.last_stanza_id = e.stanza_id


def _retracted(view: RoomView, e: ev.MessageRetracted) -> None:
    _message(view, e)
    view.removals.add((e.target_id, _remover(e)))


def _remover(e: ev.MessageRetracted) -> str:
    """Who removed a message, as far as telling one removal from another needs: the room's moderators are one;
    an author is known by occupant-id where the room gives one (stable across nicks), else by nick."""
    if e.moderated:
        return "moderator"
    return f"occupant:{e.occupant_id}" if e.occupant_id else f"nick:{e.by_nick}"


def _discovered(view: RoomView, e: ev.RoomDiscovered) -> None:
    view.first_join_pending = e.first_join_pending


def _first_join(view: RoomView, e: ev.FirstJoinCompleted) -> None:
    view.first_join_pending = False


def _destroyed(view: RoomView, e: ev.RoomDestroyed) -> None:
    view.occupants.clear()
    view.destroyed = True


_APPLY = {
    ev.OccupantJoined: _joined,
    ev.OccupantLeft: _left,
    ev.PresenceChanged: _presence,
    ev.NickChanged: _nick,
    ev.RoleChanged: _role,
    ev.AffiliationChanged: _affiliation,
    ev.SubjectChanged: _subject,
    ev.MessagePosted: _message,
    ev.MessageCorrected: _message,
    ev.MessageRetracted: _retracted,
    ev.RoomDestroyed: _destroyed,
    ev.RoomDiscovered: _discovered,
    ev.FirstJoinCompleted: _first_join,
}
