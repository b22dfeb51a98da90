"""Which events of a room stand or fall together (``projections.message_groups``): a message's post and every
correction and retraction that names it. A purge that keeps every group a hold touches whole leaves each kept
message showing exactly as it did, whatever it deletes around it (``archive.retention.purge``)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import events as ev
from projections.message_groups import message_groups
from projections.memory_book import MemoryBook
from projections.messages import step
from tests.query_api.test_one_truth import correction, histories, post, realise, retraction

ROOM = "groups@conference.localhost"
ANN, BOB = "ann@localhost/x", "bob@localhost/x"


def fold(records: list[ev.Recorded]) -> dict:
    book = MemoryBook()
    for record in records:
        book.apply(step(record.position, record.event, book))
    return book.lines


def recorded(events: list[ev.Event]) -> list[ev.Recorded]:
    return [ev.Recorded(10 * (i + 1), event) for i, event in enumerate(events)]  # positions with gaps, as purged


def groups_of(records: list[ev.Recorded]) -> list[list[int]]:
    return sorted(sorted(group) for group in message_groups(lambda: iter(records)))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories(), data=st.data())
def test_a_purge_keeping_whole_groups_leaves_every_kept_message_as_it_showed(history, data):
    """Everything not held deleted (the most a purge can take) and the rest folded again: every line of a kept
    event is the line it was, versions, removal and ids alike, with ids reused, corrections of corrections,
    removals naming a correction's id, refused corrections and retractions, and events archived late."""
    records = recorded(realise(history, ROOM))
    held = data.draw(st.sets(st.sampled_from([r.position for r in records])))
    kept = set(held) | {p for group in groups_of(records) if held.intersection(group) for p in group}
    full = fold(records)
    assert fold([r for r in records if r.position in kept]) == {i: line for i, line in full.items() if i in kept}


def test_a_message_is_grouped_with_its_chained_corrections_their_removal_and_a_refused_retraction():
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
    assert groups_of(records) == [[10, 30, 40, 50, 60, 70], [80, 90]]


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
