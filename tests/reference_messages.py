"""A small reference model of what a room's messages say, written independently of
``projections.messages`` (lists and scans, no indexes, no storage) for the
differential tests to hold every view against.

The rules restated: a message is known by its ids and those of the corrections
applied to it (and, while it awaits its message, a correction line by the id it
names). A correction or retraction names the message archived last among those
known by the id. Corrections apply only from the author (occupant-id, else bare
real JID, else nick); retractions from the author or a moderator, first one
kept. Without a message to apply to, a correction is a message of its own and a
retraction a compliance-only line, both awaiting the id; a message that comes to
be known by that id takes them in log order, as if they had come after it. A message
the room gave the id named (its stanza-id, or a correction's taken in) is meant before any known by it
otherwise. A moderation names an id the room gave: a message known by it otherwise is not the one meant,
unless the room gave it no stanza-id at all (then clients' ids are all there is); it waits. So does a
retraction by someone else than the author of a message known by the id only as a client's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from archive import events as ev
from archive.times import order_second


@dataclass
class Msg:
    id: int
    room: str
    at: datetime  # when the post occurred (the order the views use: its whole second, then id)
    kind: str  # "message" | "retraction"
    nick: str | None
    jid: str | None
    occ: str | None
    texts: list[str]  # every text, oldest first; the last is shown
    own: list[str]
    extra: list[str] = field(default_factory=list)  # ids of corrections taken in
    awaiting: str | None = None
    corrects: str | None = None
    removed: bool = False
    moderated: bool = False
    positions: list[int] = field(default_factory=list)  # the events that made its texts
    removal: int | None = None  # the event that removed it
    sid: str | None = None  # its own stanza-id (assigned by the room)
    sids: list[str] = field(default_factory=list)  # every id the room gave: its own, its corrections' taken in

    def known_by(self) -> list[str]:
        return self.own + self.extra + ([self.awaiting] if self.awaiting and self.kind == "message" else [])

    @property
    def edited(self) -> bool:
        return len(self.texts) > 1 or self.corrects is not None


def same(m: Msg, nick, jid, occ) -> bool:
    if m.occ and occ:
        return m.occ == occ
    if m.jid and jid:
        return m.jid.split("/")[0] == jid.split("/")[0]
    if m.nick and nick:
        return m.nick == nick
    return True


class Reference:
    def __init__(self) -> None:
        self.lines: list[Msg] = []

    def find(self, room: str, ref: str) -> Msg | None:
        known = [m for m in self.lines if m.kind == "message" and m.room == room and ref in m.known_by()]
        owners = [m for m in known if ref in m.sids]
        return max(owners or known, key=lambda m: m.id) if known else None

    def feed(self, position: int, e: ev.Event) -> None:
        if isinstance(e, ev.MessagePosted):
            m = Msg(position, e.room, order_second(e.occurred_at), "message", e.nick, e.jid, e.occupant_id,
                    [e.body], _ids(e), positions=[position], sid=e.stanza_id, sids=_sids(e))
            self.lines.append(m)
            self._settle(m, _ids(e))
        elif isinstance(e, ev.MessageCorrected):
            target = self.find(e.room, e.replaces_id)
            if target is not None and same(target, e.nick, e.jid, e.occupant_id):
                target.texts.append(e.body)
                target.extra += [i for i in _ids(e) if i not in target.known_by()]
                target.positions.append(position)
                target.sids += [i for i in _sids(e) if i not in target.sids]
                self._settle(target, _ids(e))
            else:
                m = Msg(position, e.room, order_second(e.occurred_at), "message", e.nick, e.jid, e.occupant_id,
                        [e.body], _ids(e),
                        awaiting=e.replaces_id if target is None else None, corrects=e.replaces_id,
                        positions=[position], sid=e.stanza_id, sids=_sids(e))
                self.lines.append(m)
                self._settle(m, _ids(e))
        elif isinstance(e, ev.MessageRetracted):
            target = self.find(e.room, e.target_id)
            verdict = None if target is None else removes(target, e.target_id, e.moderated, e.by_nick, e.by_jid,
                                                          e.occupant_id)
            if verdict is None:
                self.lines.append(Msg(position, e.room, order_second(e.occurred_at), "retraction", e.by_nick,
                                      e.by_jid, e.occupant_id, [], [],
                                      awaiting=e.target_id, removed=True, moderated=e.moderated, removal=position))
            elif verdict and not target.removed:
                target.removed, target.removal = True, position

    def _settle(self, m: Msg, refs: list[str]) -> None:
        todo = list(refs)
        while todo:
            waiting = sorted((w for w in self.lines if w is not m and w.room == m.room and w.awaiting in todo),
                             key=lambda w: w.id)
            todo = []
            for w in waiting:
                if w.kind == "retraction":
                    verdict = removes(m, w.awaiting, w.moderated, w.nick, w.jid, w.occ)
                    if verdict is None:
                        continue  # not this message's: waits on
                    if verdict and not m.removed:
                        m.removed, m.removal = True, w.removal
                    self.lines.remove(w)
                elif same(m, w.nick, w.jid, w.occ):
                    todo += w.known_by()
                    m.texts += w.texts
                    m.extra += [i for i in w.known_by() if i not in m.known_by()]
                    m.positions += w.positions
                    m.sids += [i for i in w.sids if i not in m.sids]
                    if not m.removed and w.removed:
                        m.removed, m.removal = True, w.removal
                    self.lines.remove(w)
                else:
                    w.awaiting = None

    def messages(self, *, compliance: bool) -> dict[int, tuple]:
        """id -> (text shown, edited, removed) of every line the role sees."""
        out = {}
        for m in self.lines:
            if m.kind == "retraction":
                if compliance:
                    out[m.id] = (None, False, True)
                continue
            shown = None if (m.removed and not compliance) else m.texts[-1]
            out[m.id] = (shown, m.edited, m.removed)
        return out

    def exported(self) -> set[int]:
        """The events a compliance export of every message carries."""
        return {p for m in self.lines if m.kind == "message" for p in (*m.positions, m.removal) if p is not None}


def removes(m: Msg, ref: str, moderated: bool, nick, jid, occ) -> bool | None:
    """A retraction naming ``ref`` meeting ``m``: True removes it, False is refused, None waits on."""
    if ref in m.sids:
        return moderated or same(m, nick, jid, occ)
    if moderated:
        return True if m.sid is None else None
    return True if same(m, nick, jid, occ) else None


def _sids(e) -> list[str]:
    return [e.stanza_id] if e.stanza_id else []


def _ids(e) -> list[str]:
    out = []
    for ident in (e.stanza_id, e.origin_id, e.message_id):
        if ident and ident not in out:
            out.append(ident)
    return out
