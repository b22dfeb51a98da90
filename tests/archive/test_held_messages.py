"""A legal hold keeps whole messages, on both stores: a purge keeps every correction and removal of a message a
hold covers, however late, by its author or a moderator, and the message every correction or removal it covers changed;
what it keeps shows as it did before, and the chains verify across what it deletes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive import events as ev
from archive.integrity import verify_integrity
from archive.retention import place_hold, purge
from archive.settings import RetentionSettings
from projections.message_groups import message_groups
from projections.memory_book import MemoryBook
from projections.messages import step
from tests.factories import T0, at, make, message

LOBBY = "lobby@conference.localhost"
ANN, BOB, MOD = "ann@localhost/pc", "bob@localhost/x", "mod@localhost/desk"
NOW = T0 + timedelta(days=10)
ONE_DAY = RetentionSettings(default_days=1)


@pytest.fixture
def event_store(store_url):
    from archive.application import open_event_store

    with open_event_store(store_url) as store:
        yield store


def correction(t, body, replaces, nick="ann", jid=ANN, **fields):
    return make(ev.MessageCorrected, t, room=LOBBY, nick=nick, jid=jid, body=body, replaces_id=replaces, **fields)


def removal(t, target, **fields):
    return make(ev.MessageRetracted, t, room=LOBBY, target_id=target, **fields)


def moderation(t, target):
    return removal(t, target, moderated=True, by_nick="mod", by_jid=MOD, reason="abuse", stanza_id=f"mod-{t}")


def purged(store, **hold) -> list[str]:
    """Place ``hold``, purge a day's retention ten days on, and say what remains of the room: each event's body,
    or its kind and the id it names; the chains verify and the purge counted what it deleted."""
    before = len(list(store.read_room(LOBBY)))
    place_hold(store, case="Acme", **hold)
    dry = purge(store, ONE_DAY, together=message_groups, now=NOW, dry_run=True)
    record = purge(store, ONE_DAY, together=message_groups, now=NOW)
    after = list(store.read_room(LOBBY))
    assert record.events == dry.events == before - len(after)
    report = verify_integrity(store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]
    return [getattr(r.event, "body", None) or f"{type(r.event).__name__}:{getattr(r.event, 'target_id', '')}" for r in after]


def shown(store) -> dict[str, tuple]:
    """What the message model makes of the room now: stanza-id -> (text, removed by)."""
    book = MemoryBook()
    for record in store.read_room(LOBBY):
        book.apply(step(record.position, record.event, book))
    return {line.stanza_id: (line.body, line.removed and line.removed.by_nick) for line in book.lines.values()}


def test_a_room_hold_keeps_what_removed_and_corrected_its_messages_after_it_ended(event_store):
    """The hold ends at 150 s; the moderation, the corrections (a chain) and the retraction of a correction that
    came after it were deleted, and the rebuilt views showed the held messages as never removed, uncorrected."""
    event_store.append([
        message(100, "abuse", "ann", room=LOBBY, jid=ANN, stanza_id="s1"),
        message(110, "teh", "ann", room=LOBBY, jid=ANN, stanza_id="s2"),
        moderation(200, "s1"),
        correction(210, "the", "s2", stanza_id="c1"),
        correction(220, "the!", "c1", stanza_id="c2"),  # corrects the correction
        removal(230, "c2", by_nick="ann", by_jid=ANN),  # retracts by the correction's id
        message(300, "after the hold", "bob", room=LOBBY, jid=BOB, stanza_id="s3"),
        correction(310, "after the hold!", "s3", nick="bob", jid=BOB),
    ])  # fmt: skip
    assert purged(event_store, rooms=[LOBBY], end=at(150)) == [
        "abuse", "teh", "MessageRetracted:s1", "the", "the!", "MessageRetracted:c2"]
    assert shown(event_store) == {"s1": ("abuse", "mod"), "s2": ("the!", "ann")}


def test_a_hold_on_a_person_keeps_the_moderation_of_their_message_by_a_moderator_it_does_not_name(event_store):
    event_store.append([
        message(100, "abuse", "ann", room=LOBBY, jid=ANN, stanza_id="s1"),
        message(110, "bob's", "bob", room=LOBBY, jid=BOB, stanza_id="s2"),
        moderation(200, "s1"),
        moderation(210, "s2"),
        correction(220, "the", "s2", nick="bob", jid=BOB),
    ])  # fmt: skip
    assert purged(event_store, jids=["ann@localhost"]) == ["abuse", "MessageRetracted:s1"]
    assert shown(event_store) == {"s1": ("abuse", "mod")}


def test_a_correction_a_time_window_holds_keeps_the_message_it_corrects(event_store):
    """The held record stays readable: a correction says what it changed only beside the message it changed (and
    kept alone, it would await a message by its id, and a later message with that id would take it)."""
    event_store.append([
        message(50, "spam", "bob", room=LOBBY, jid=BOB, stanza_id="s0"),
        moderation(60, "s0"),  # before the window: deleted with its message
        message(100, "teh", "ann", room=LOBBY, jid=ANN, stanza_id="s1"),  # before the window
        correction(250, "the", "s1", stanza_id="c1"),  # in it
        message(400, "later", "bob", room=LOBBY, jid=BOB, stanza_id="s2"),  # after it
        removal(450, "s2", by_nick="bob", by_jid=BOB),
    ])  # fmt: skip
    assert purged(event_store, rooms=["lobby@*"], start=at(200), end=at(300)) == ["teh", "the"]
    assert shown(event_store) == {"s1": ("the", None)}


def test_a_held_moderation_not_yet_expired_keeps_the_expired_message_it_removed(event_store):
    """A hold on the moderator: the message expired first and went, the kept moderation removing nothing."""
    event_store.append([
        message(100, "abuse", "ann", room=LOBBY, jid=ANN, stanza_id="s1"),
        message(110, "fine", "ann", room=LOBBY, jid=ANN, stanza_id="s2"),
        moderation(9 * 86400 + 60, "s1"),  # within the day's retention
    ])  # fmt: skip
    assert purged(event_store, jids=["mod@localhost"]) == ["abuse", "MessageRetracted:s1"]
    assert shown(event_store) == {"s1": ("abuse", "mod")}


def test_a_group_not_yet_all_expired_is_kept_whole_so_its_survivor_names_no_held_message(event_store):
    """A held post, a later post by the same id (a client reusing ids), expired and held by nothing, and its
    correction, not yet expired: split, the correction's group lost its post and the correction then named the
    held message (the newest left with that id), which the views showed corrected by it."""
    event_store.append([
        message(100, "held", "ann", room=LOBBY, jid=ANN, stanza_id="s1", message_id="x"),
        message(200, "other", "ann", room=LOBBY, jid=ANN, stanza_id="s2", message_id="x"),
        message(300, "expired, alone", "bob", room=LOBBY, jid=BOB, stanza_id="s3"),
        correction(9 * 86400 + 60, "fixed other", "x", stanza_id="c1"),  # within the day's retention
    ])  # fmt: skip
    assert purged(event_store, rooms=[LOBBY], start=at(50), end=at(150)) == ["held", "other", "fixed other"]
    assert shown(event_store) == {"s1": ("held", None), "s2": ("fixed other", None)}
