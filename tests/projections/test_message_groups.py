"""Which events of a room stand or fall together (``projections.message_groups``): a message's post and the
corrections and retractions the model applied to it. A purge that keeps every group a hold touches whole leaves
each kept message showing exactly as it did, whatever it deletes around it (``archive.retention.purge``), but
for what a kept event the model refused on a deleted message does to its own author's lines."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import events as ev
from projections.message_groups import message_groups
from projections.memory_book import MemoryBook
from projections.messages import meant, named, same_author, step
from tests.query_api.test_one_truth import correction, histories, post, realise, retraction

ROOM = "groups@conference.localhost"
ANN, BOB, MALLORY = "ann@localhost/x", "bob@localhost/x", "mallory@localhost/x"


def fold(records: list[ev.Recorded]) -> dict:
    book = MemoryBook()
    for record in records:
        book.apply(step(record.position, record.event, book))
    return book.lines


def recorded(events: list[ev.Event]) -> list[ev.Recorded]:
    return [ev.Recorded(10 * (i + 1), event) for i, event in enumerate(events)]  # positions with gaps, as purged


def groups_of(records: list[ev.Recorded]) -> list[list[int]]:
    return sorted(sorted(group) for group in message_groups(lambda: iter(records)))


def strays(records: list[ev.Recorded], kept: set[int]) -> list[ev.Event]:
    """The kept corrections and retractions whose fold met a line the purge deleted, refused or waiting (one the
    model applied is in that line's group): the line it meant, or the line that came and settled it (took it in,
    refused it, or let another's correction be a line of its own)."""
    book, met = MemoryBook(), {}
    for record in records:
        position, event = record.position, record.event
        target = meant(event, book) if named(event) else None
        if target is not None:
            met.setdefault(position, set()).add(target.id)
        changes = step(position, event, book)
        for line_id in [*changes.dropped, *(line.id for line in changes.put)]:
            if line_id != position:
                met.setdefault(line_id, set()).add(position)
        book.apply(changes)
    return [r.event for r in records if r.position in kept and named(r.event) and not met.get(r.position, set()) <= kept]


def author(event: ev.Event) -> tuple:
    if type(event) is ev.MessageRetracted:
        return event.by_nick, event.by_jid, event.occupant_id
    return event.nick, event.jid, event.occupant_id


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories(), data=st.data())
def test_a_purge_keeping_whole_groups_leaves_every_kept_message_as_it_showed(history, data):
    """Everything not held deleted (the most a purge can take) and the rest folded again: every line of a kept
    event is the line it was, versions, removal and ids alike, with ids reused, corrections of corrections,
    removals naming a correction's id, refused corrections and retractions, and events archived late; but for
    the lines of the author of a kept event the model refused on a deleted message (or left waiting past one),
    which now names a message the archive does not hold: it awaits one, or means another line carrying the id,
    which it changes only if it is its own author's."""
    records = recorded(realise(history, ROOM))
    held = data.draw(st.sets(st.sampled_from([r.position for r in records])))
    kept = set(held) | {p for group in groups_of(records) if held.intersection(group) for p in group}
    full, after = fold(records), fold([r for r in records if r.position in kept])
    changed = [after.get(i) or full[i] for i in sorted(kept) if after.get(i) != full.get(i)]
    loose = [author(event) for event in strays(records, kept)]
    assert [line for line in changed if not any(same_author(line, *who) for who in loose)] == []


def test_a_refused_correction_or_retraction_is_no_part_of_the_message_it_names():
    """Anyone in a room kept any message from ever being purged: mallory's correction of ann's message (refused:
    a line of her own) and her retraction of it (refused: nothing) were grouped with it, and kept it while they
    were younger than the cutoff. Her own correction of her line is in her line's group."""
    records = recorded([
        post(0, "ann", "mine", sid="s1", room=ROOM, jid=ANN),  # 10
        correction(1, "mallory", "hers now", "s1", sid="c1", jid=MALLORY, room=ROOM),  # 20: refused: her line
        retraction(2, "s1", by_nick="mallory", by_jid=MALLORY, sid="r1", room=ROOM),  # 30: refused: nothing
        correction(3, "mallory", "hers, fixed", "c1", sid="c2", jid=MALLORY, room=ROOM),  # 40: applied to her line
        correction(4, "ann", "mine, fixed", "s1", sid="c3", jid=ANN, room=ROOM),  # 50: applied to ann's
    ])  # fmt: skip
    assert groups_of(records) == [[10, 50], [20, 40]]


def test_what_awaited_a_message_is_in_its_group_only_if_the_model_applied_it():
    """Archived before the message (a backfill): its author's correction is taken into it when it comes, with the
    removal naming the correction's stanza-id; mallory's retraction, waiting for it too, is refused, and her
    correction, awaiting its origin-id, becomes a line of her own: neither is in its group."""
    records = recorded([
        retraction(1, "s1", by_nick="mallory", by_jid=MALLORY, sid="r1", room=ROOM),  # 10: awaits s1
        correction(2, "ann", "mine, fixed", "s1", sid="c2", jid=ANN, room=ROOM),  # 20: awaits s1
        correction(3, "mallory", "hers now", "o1", sid="c3", jid=MALLORY, room=ROOM),  # 30: awaits o1
        post(0, "ann", "mine", sid="s1", oid="o1", room=ROOM, jid=ANN),  # 40
        retraction(4, "c2", by_nick="ann", by_jid=ANN, sid="r2", room=ROOM),  # 50: names the correction's id
    ])  # fmt: skip
    lines = fold(records)
    assert lines[40].removed.position == 50 and lines[30].corrects == "o1" and lines[30].awaiting is None
    assert groups_of(records) == [[20, 40, 50]]


def test_a_moderation_waiting_past_a_decoy_joins_the_message_the_room_gave_the_id_not_the_decoy():
    """A moderation names the stanza-id the room gave a message missed live; a decoy carrying it as its origin-id
    was archived first: the moderation waits past it (a line of its own, in no group), and is in the message's
    group once a backfill brings the message. A second moderation of a removed message is in its group too:
    alone, it would remove the next message reusing the id."""
    records = recorded([
        post(1, "mallory", "decoy", sid="d1", oid="s1", room=ROOM, jid=MALLORY),  # 10
        retraction(2, "s1", by_nick="mod", moderated=True, sid="r1", room=ROOM),  # 20: waits past the decoy
        post(0, "ann", "missed live", sid="s1", room=ROOM, jid=ANN),  # 30: the backfill
        retraction(3, "s1", by_nick="mod2", moderated=True, sid="r2", room=ROOM),  # 40: removed already
    ])  # fmt: skip
    assert groups_of(records[:2]) == []
    assert groups_of(records) == [[20, 30, 40]]


def test_a_message_is_grouped_with_its_chained_corrections_and_their_removal_not_what_it_refused():
    records = recorded([
        post(0, "ann", "teh", sid="s1", room=ROOM, jid=ANN),  # 10
        post(1, "bob", "alone", sid="s2", room=ROOM, jid=BOB),  # 20: nothing names it
        correction(2, "ann", "the", "s1", sid="c1", jid=ANN, room=ROOM),  # 30
        correction(3, "ann", "the!", "c1", sid="c2", jid=ANN, room=ROOM),  # 40: a chain
        retraction(4, "c2", by_nick="bob", by_jid=BOB, sid="r1", room=ROOM),  # 50: not bob's: refused
        retraction(5, "c1", by_nick="mod", moderated=True, sid="r2", room=ROOM),  # 60: names a correction's id
        correction(6, "bob", "not mine", "s1", sid="c3", jid=BOB, room=ROOM),  # 70: bob's line, naming s1
        post(7, "bob", "reply", sid="s3", room=ROOM, jid=BOB),  # 80
        retraction(8, "s3", by_nick="bob", by_jid=BOB, sid="r3", room=ROOM),  # 90
    ])  # fmt: skip
    assert groups_of(records) == [[10, 30, 40, 60], [80, 90]]  # bob's refused retraction and correction: apart


def test_a_correction_archived_before_its_message_joins_it_when_it_comes():
    records = recorded([
        correction(1, "ann", "the", "s1", sid="c1", room=ROOM),  # 10: a backfill stored it first
        retraction(2, "ghost", by_nick="ann", sid="r0", room=ROOM),  # 20: names a message never archived
        post(0, "ann", "teh", sid="s1", room=ROOM),  # 30
    ])  # fmt: skip
    assert groups_of(records) == [[10, 30]]


def test_a_room_without_corrections_or_retractions_has_no_groups_and_is_read_once():
    records = recorded([post(t, "ann", "hi", sid=f"s{t}", room=ROOM) for t in range(5)])
    reads = []
    assert message_groups(lambda: reads.append(1) or iter(records)) == []
    assert reads == [1]
