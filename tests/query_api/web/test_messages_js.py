"""The widget's mirror of the message model (query_api/static/messages.js, run in headless Chromium) against
the model itself (projections/messages.py): random histories of posts, corrections and retractions, in and
out of order, leave the same lines in both; so do histories the widget reads first from the archive's feed
(lines and presences, real JIDs as its author keys, one for each stay) and then hears live without JIDs or
occupant-ids, the model telling authors by their JID in the stay they are in."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec

from archive import events as ev
from projections.lines import ids
from projections.memory_book import MemoryBook
from projections.messages import bare, step
from projections.presence import logic as presence_logic
from projections.presence.logic import Span, stay_at
from projections.transcripts import logic
from query_api.web import widget_feed
from tests.factories import make
from tests.query_api.web.test_widget_feed import SECRET

SOURCE = Path(__file__).parents[3] / "query_api" / "static" / "messages.js"
# Who speaks: the same person under another nick (occupant-id and JID kept), a namesake, a room without ids.
PEOPLE = [("alice", "alice@x", "oa"), ("ally", "alice@x", "oa"), ("alice", "eve@x", "oe"), ("bob", None, None),
          ("bob", "bob@x", None), ("carol", None, "oc")]


def history(rng: random.Random) -> list[ev.Event]:
    """Events naming a small pool of ids, some of messages still to come."""
    events = []
    size = rng.randint(2, 12)
    for n in range(size):
        nick, jid, occ = rng.choice(PEOPLE[:2] * 3 + PEOPLE)  # mostly one author: corrections apply, chain
        # An id attribute may be another message's stanza-id (a squat, before or after that message).
        squat = f"s{rng.randint(0, size)}"
        own = {"stanza_id": f"s{n}", "message_id": rng.choice([f"m{n}", f"m{n % 3}", None, squat])}
        # Often an id still to come: what awaits its message, several lines on its several ids.
        nth = rng.randint(n + 1, n + 3) if rng.random() < 0.5 else rng.randint(0, size)
        named = rng.choice([f"s{nth}", f"m{nth}"])
        kind = rng.choice(["post", "post", "correct", "correct", "retract", "moderate"])
        if kind == "post":
            events.append(make(ev.MessagePosted, n, nick=nick, jid=jid, occupant_id=occ, body=f"b{n}", **own))
        elif kind == "correct":
            events.append(make(ev.MessageCorrected, n, nick=nick, jid=jid, occupant_id=occ, body=f"c{n}",
                               replaces_id=named, **own))
        else:
            events.append(make(ev.MessageRetracted, n, target_id=named, moderated=kind == "moderate",
                               by_nick=nick, by_jid=jid, occupant_id=occ, stanza_id=f"s{n}"))
    return events


def heard(position: int, event: ev.Event) -> dict:
    """The event as xmpp.js reports it (with the sender's real JID: a room that shows them)."""
    if isinstance(event, ev.MessageRetracted):
        return {"kind": "retraction", "key": f"l{position}", "seq": position, "target": event.target_id,
                "moderated": event.moderated, "nick": event.by_nick, "jid": event.by_jid,
                "occupant_id": event.occupant_id}
    item = {"kind": "message", "key": f"l{position}", "seq": position, "nick": event.nick, "jid": event.jid,
            "occupant_id": event.occupant_id, "body": event.body, "stanza_id": event.stanza_id,
            "refs": list(dict.fromkeys(i for i in (event.stanza_id, event.message_id) if i))}
    if isinstance(event, ev.MessageCorrected):
        item.update(kind="correction", replaces=event.replaces_id)
    return item


def python_lines(events: list[ev.Event], joined: int = 0) -> list[tuple]:
    """The model's lines after ``events``, less the retraction lines of the first ``joined`` (before the widget
    joined): the feed sends none (never shown), so the widget holds only those it hears."""
    book = MemoryBook()
    for position, event in enumerate(events, 1):
        book.apply(step(position, event, book))
    return lines_of(book, joined)


def lines_of(book: MemoryBook, joined: int) -> list[tuple]:
    return [(line.kind, line.nick, line.body, line.edited, line.removed is not None, sorted(ids(line)), line.awaiting)
            for line in sorted(book.lines.values(), key=lambda line: line.id)
            if not (line.kind == "retraction" and line.id <= joined)]


JS_LINES = """
var results = [];
arguments[0].forEach(function (items) {
  var book = new ChatArchiveMessages.Book();
  items.forEach(function (item) { book.apply(ChatArchiveMessages.step(item, book)); });
  results.push(book.lines.map(function (line) {
    return [line.kind, line.nick, line.body === undefined ? null : line.body, !!line.edited, !!line.removed,
            ChatArchiveMessages.ids(line).slice().sort(), line.awaiting || null];
  }));
});
return results;
"""


def test_the_widget_s_message_model_answers_as_the_archive_s(browser):
    rng = random.Random(20261205)
    histories = [history(rng) for _ in range(3000)]
    browser.get("about:blank")
    browser.execute_script(SOURCE.read_text(encoding="utf-8"))
    got = browser.execute_script(JS_LINES, [[heard(p, e) for p, e in enumerate(h, 1)] for h in histories])
    for events, lines in zip(histories, got):
        assert [tuple(line) for line in lines] == python_lines(events), events


def test_the_widget_holds_a_bounded_number_of_lines_and_of_those_awaiting_their_message(browser):
    browser.get("about:blank")
    browser.execute_script(SOURCE.read_text(encoding="utf-8"))
    held, lines, first_known = browser.execute_script("""
      var book = new ChatArchiveMessages.Book();
      for (var n = 0; n < 2500; n++) {
        var item = n % 10 ? {kind: "message", nick: "a", body: "b", refs: ["s" + n]}
                          : {kind: "correction", nick: "a", body: "c", refs: ["s" + n], replaces: "missing" + n};
        book.apply(ChatArchiveMessages.step(Object.assign({key: "l" + n, seq: n}, item), book));
      }
      return [book.held.length, book.lines.length, book.lines[0].key];
    """)
    assert (held, lines, first_known) == (200, 2000, "l500")


def joined_history(rng: random.Random) -> tuple[list[ev.Event], int]:
    """A room without occupant-ids whose real JIDs the archive knows: people join, leave, rename (a nick
    that came free is taken by another, an author goes on under a new nick), set the subject and speak,
    naming messages said before; the widget then joins (at the returned index) and hears what is said, no presence."""
    holders: dict[str, str] = {}  # nick -> real JID
    events, said = [], []
    size, join_at = rng.randint(3, 16), rng.randint(1, 12)
    for _ in range(10 * size):  # ends early where nobody is in after Join
        if len(events) == size:
            break
        t, free = len(events), [nick for nick in ("ann", "anna", "bob") if nick not in holders]
        absent = [jid for jid in ("ann@x", "mallory@y", "bob@z") if jid not in holders.values()]
        kind = rng.choice(["say"] * 4 + (["rename"] if t >= join_at else ["join", "leave", "rename", "subject"]))
        if kind == "join" and free and absent:
            holders[nick := rng.choice(free)] = rng.choice(absent)
            events.append(make(ev.OccupantJoined, t, nick=nick, jid=holders[nick] + "/r"))
        elif kind == "leave" and holders:
            nick = rng.choice(sorted(holders))
            events.append(make(ev.OccupantLeft, t, nick=nick, jid=holders.pop(nick) + "/r"))
        elif kind == "rename" and holders and free:
            old, new = rng.choice(sorted(holders)), rng.choice(free)
            holders[new] = holders.pop(old)
            events.append(make(ev.NickChanged, t, old_nick=old, new_nick=new, jid=holders[new] + "/r"))
        elif kind == "subject" and holders:  # a line of the nick's that tells nothing of its holder's JID
            events.append(make(ev.SubjectChanged, t, nick=rng.choice(sorted(holders)), subject=f"topic {t}"))
        elif kind == "say" and holders:
            nick = rng.choice(sorted(holders))
            who = {"nick": nick, "jid": holders[nick] + "/r"}
            own = {"stanza_id": f"s{t}", "message_id": f"m{t}"}
            named = rng.choice(said) if said else "s0"
            action = rng.choice(["post", "post", "correct", "correct", "retract"]) if said else "post"
            if action == "post":
                events.append(make(ev.MessagePosted, t, body=f"b{t}", **who, **own))
            elif action == "correct":
                events.append(make(ev.MessageCorrected, t, body=f"c{t}", replaces_id=named, **who, **own))
            else:
                events.append(make(ev.MessageRetracted, t, target_id=named, by_nick=nick, by_jid=who["jid"],
                                   stanza_id=f"s{t}"))
            said += [] if action == "retract" else [f"s{t}", f"m{t}"]
    return events, min(join_at, len(events))


def spans(events: list[ev.Event]) -> list[Span]:
    """The presence view's spans of ``events`` (of one room), each as it ends up."""
    room_open: dict[str, Span] = {}
    made: dict[int, Span] = {}
    for position, event in enumerate(events, 1):
        changes = presence_logic.step(room_open, position, event)
        made.update((span.id, span) for span in changes)
        presence_logic.hold(room_open, changes)
    return list(made.values())


def feed(events: list[ev.Event]) -> list[dict]:
    """The archive's feed of ``events``' room as the widget holds it at Join."""
    book = MemoryBook()
    for position, event in enumerate(events, 1):
        book.apply(logic.step(position, event, book))
    lines = sorted(book.lines.values(), key=lambda line: line.id)
    known = spans(events)
    return [{**widget_feed.item(line, SECRET, stay_at(known, line.nick, line.jid, line.at, leaving=line.kind == "left")),
             "key": f"f{line.id}"} for line in lines if line.kind in widget_feed.SHOWN_KINDS]


def widget_lines(events: list[ev.Event], joined: int) -> list[tuple]:
    """What the widget holds once it has heard ``events`` after the first ``joined`` (``python_lines``): the
    archive's lines at Join, then what it heard, judged by the model with each author's real JID as the one of
    the stay it was in (the feed's author keys): an author back in another stay is somebody else to it."""
    known = spans(events)

    def in_stay(own: int, nick: str, jid: str | None, at) -> str | None:
        stay = stay_at(known, nick, jid, at)
        return jid and f"{bare(jid)}#{f'line {own}' if stay is None else stay}"  # as ``widget_feed.author_key``

    book = MemoryBook()
    for position, event in enumerate(events[:joined], 1):
        book.apply(step(position, event, book))
    for line in list(book.lines.values()):
        book.lines[line.id] = msgspec.structs.replace(line, jid=in_stay(line.id, line.nick, line.jid, line.at))
    for position, event in enumerate(events[joined:], joined + 1):
        if isinstance(event, ev.MessageRetracted):
            event = msgspec.structs.replace(event, by_jid=in_stay(position, event.by_nick, event.by_jid,
                                                                        event.occurred_at))
        elif isinstance(event, (ev.MessagePosted, ev.MessageCorrected)):
            event = msgspec.structs.replace(event, jid=in_stay(position, event.nick, event.jid, event.occurred_at))
        book.apply(step(position, event, book))
    return lines_of(book, joined)


def live(position: int, event: ev.Event) -> dict:
    """The event as xmpp-room.js reports it where the room shows no JIDs and gives no occupant-ids."""
    if isinstance(event, ev.NickChanged):
        return {"kind": "nick_changed", "old_nick": event.old_nick, "nick": event.new_nick}
    return {**heard(position, event), "jid": None}


JS_JOINED_LINES = """
return arguments[0].map(function (history) {
  var book = new ChatArchiveMessages.Book();
  book.start(history[0]);
  history[1].forEach(function (item) {  // as widget.js hears them
    if (item.kind === "nick_changed") { book.know(item); } else { book.apply(ChatArchiveMessages.step(item, book)); }
  });
  return book.lines.map(function (line) {
    return [line.kind, line.nick, line.body === undefined ? null : line.body, !!line.edited, !!line.removed,
            ChatArchiveMessages.ids(line).slice().sort(), line.awaiting || null];
  });
});
"""


def test_the_widget_tells_authors_as_the_archive_does_by_their_jids_within_a_stay_which_it_is_not_shown(browser):
    rng = random.Random(20261205)
    histories = [joined_history(rng) for _ in range(2000)]
    sent = [[feed(events[:at]), [live(p, e) for p, e in enumerate(events, 1) if p > at]] for events, at in histories]
    browser.get("about:blank")
    browser.execute_script(SOURCE.read_text(encoding="utf-8"))
    got = browser.execute_script(JS_JOINED_LINES, sent)
    for (events, at), lines in zip(histories, got):
        assert [tuple(line) for line in lines] == widget_lines(events, at), events
