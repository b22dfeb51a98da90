"""The message model itself (``projections.messages``: ``step`` over a ``MemoryBook``, as the transcript view
drives it) says what the reference model (tests/reference_messages.py) says about every message, for any
history; tests/query_api/test_one_truth.py holds every view to the same, through the stores and the API."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings

from projections.memory_book import MemoryBook
from projections.transcripts import logic
from tests.query_api.test_one_truth import correction, histories, post, realise, retraction
from tests.reference_messages import Reference

ROOM = "model@conference.localhost"


def shown(book: MemoryBook, *, compliance: bool) -> dict[int, tuple]:
    """The book's lines in the reference's shape: id -> (text shown, edited, removed)."""
    out = {}
    for line in book.lines.values():
        removed = line.removed is not None
        if line.kind == "retraction":
            if compliance:
                out[line.id] = (None, False, True)
            continue
        if line.kind != "message":
            continue  # the transcript's joins and leaves
        out[line.id] = (None if removed and not compliance else line.body, line.edited, removed)
    return out


def who(person: str) -> dict:
    return {"nick": person, "occ": f"occ-{person}", "jid": None}


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories())
# A correction awaiting c3 (bob's) stops awaiting it when cy's correction gives c3 to cy's line: bob's
# retraction of c3 then names cy's line, not bob's (the book still took c3 to name bob's line).
@example(history=[
    ("correct", 2, who("cy"), "s2", "c2", "ghost"),
    ("correct", 5, who("bob"), "s5", "c5", "c3"),
    ("correct", 3, who("cy"), "s3", "c3", "c2"),
    ("retract", 6, who("bob"), "s6", None, "c3"),
])  # fmt: skip
def test_the_model_says_what_the_reference_says(history):
    book, reference = MemoryBook(), Reference()
    for position, event in enumerate(realise(history, ROOM), start=1):
        book.apply(logic.step(position, event, book))
        reference.feed(position, event)
    for compliance in (True, False):
        assert shown(book, compliance=compliance) == reference.messages(compliance=compliance)


# -- removals and the ids the room gave (the reviewer's cases, each in both orders of arrival) ----------------

def fold(events) -> MemoryBook:
    book = MemoryBook()
    for position, event in enumerate(events, start=1):
        book.apply(logic.step(position, event, book))
    return book


def removed(book: MemoryBook) -> dict[int, bool]:
    """Each message line's position -> removed or not."""
    return {i: line.removed is not None for i, line in book.lines.items() if line.kind == "message"}


ALICE = {"jid": "alice@localhost/pc", "room": ROOM}  # a room without occupant-ids that shows real JIDs
MALLORY = {"jid": "mallory@localhost/pc", "room": ROOM}
# How mallory's decoy carries alice's message's stanza-id sA: as its origin-id, its id attribute, or the id of
# her own correction of it (a correction's ids name the message it is applied to).
DECOYS = {
    "origin-id": [post(1, "mallory", "decoy", sid="sD", oid="sA", **MALLORY)],
    "id attribute": [post(1, "mallory", "decoy", sid="sD", mid="sA", **MALLORY)],
    "correction's id": [post(1, "mallory", "decoy", sid="sD", mid="mD", **MALLORY),
                        correction(1.5, "mallory", "decoy!", "mD", sid="sE", mid="sA", **MALLORY)],
}
MESSAGE = post(0, "alice", "abuse", sid="sA", mid="mA", **ALICE)
MODERATION = retraction(3, "sA", by_nick="mod", moderated=True, sid="sM", room=ROOM)
OWN_RETRACTION = retraction(3, "sA", by_nick="alice", by_jid="alice@localhost/phone", sid="sR", room=ROOM)


@pytest.mark.parametrize("removal", [MODERATION, OWN_RETRACTION], ids=["moderation", "author's retraction"])
@pytest.mark.parametrize("decoy", sorted(DECOYS))
@pytest.mark.parametrize("order", ["message archived first", "message backfilled last"])
def test_a_removal_naming_a_stanza_id_removes_the_message_the_room_gave_it_whatever_came_first(decoy, removal, order):
    """The reviewer's case: alice's message (stanza-id sA) is missed live and backfilled after mallory's decoy
    carrying sA as a client id and after the removal naming sA (XEP-0425 names the stanza-id; so do today's
    XEP-0424 clients). The removal meeting the decoy first waits for the message the room gave sA; it used to
    remove the decoy (moderation) or be refused by it and dropped (alice's retraction), leaving alice's message
    shown in every view. Failed on the old code for the backfilled order."""
    decoys = DECOYS[decoy]
    events = [MESSAGE, *decoys, removal] if order == "message archived first" else [*decoys, removal, MESSAGE]
    book = fold(events)
    message = 1 if order == "message archived first" else len(events)
    assert removed(book) == {message: True, (2 if message == 1 else 1): False}
    assert not any(line.kind == "retraction" for line in book.lines.values()), "nothing left waiting"


def test_a_moderation_naming_only_a_decoy_s_client_id_waits_for_the_message_and_stays_for_compliance():
    book = fold([*DECOYS["origin-id"], MODERATION])
    waiting = [line for line in book.lines.values() if line.kind == "retraction"]
    assert removed(book) == {1: False} and [line.awaiting for line in waiting] == ["sA"]


def test_a_moderation_of_a_correction_s_stanza_id_removes_the_message_not_a_decoy_carrying_it():
    """The room gave alice's correction the stanza-id sC: a moderation naming sC means her message (which took
    the correction), not mallory's later post carrying sC as its origin-id. Failed on the old code (a
    correction's ids were all client ids: the decoy, newer, was meant)."""
    events = [MESSAGE, correction(1, "alice", "abuse!", "sA", sid="sC", mid="mC", **ALICE),
              post(2, "mallory", "decoy", sid="sD", oid="sC", **MALLORY),
              retraction(3, "sC", by_nick="mod", moderated=True, sid="sM", room=ROOM)]
    assert removed(fold(events)) == {1: True, 3: False}


def test_a_moderation_of_an_awaiting_correction_s_stanza_id_reaches_the_message_when_it_comes():
    events = [correction(1, "alice", "abuse!", "sA", sid="sC", mid="mC", **ALICE),
              retraction(3, "sC", by_nick="mod", moderated=True, sid="sM", room=ROOM),
              post(2, "mallory", "decoy", sid="sD", oid="sC", **MALLORY),
              MESSAGE]
    book = fold(events)
    assert removed(book) == {3: False, 4: True} and book.lines[4].body == "abuse!"


@pytest.mark.parametrize("first", ["message", "moderation"])
def test_in_a_room_that_gives_no_stanza_ids_a_moderation_removes_the_message_by_the_id_it_carries(first):
    """Without stanza-ids (a room without an archive; an import) a moderation can name only an id a client chose:
    it takes the message carrying it, as before."""
    message = post(0, "alice", "abuse", sid=None, oid="o1", mid="m1", **ALICE)
    moderation = retraction(1, "o1", by_nick="mod", moderated=True, room=ROOM)
    book = fold([message, moderation] if first == "message" else [moderation, message])
    assert list(removed(book).values()) == [True] and len(book.lines) == 1


@pytest.mark.parametrize("first", ["message", "retraction"])
def test_a_self_retraction_is_judged_by_real_jid_as_a_correction_is(first):
    """A room without occupant-ids: alice posted and left, mallory took the nick "alice". Her retraction, which
    now names her real JID (ingest.translate_message), is refused as her correction is; alice's own under a new
    nick applies."""
    message = post(0, "alice", "mine", sid="s1", **ALICE)
    by_mallory = retraction(1, "s1", by_nick="alice", by_jid="mallory@localhost/x", sid="r1", room=ROOM)
    fixed = correction(2, "alice", "not hers", "s1", sid="c1", jid="mallory@localhost/x", room=ROOM)
    book = fold([message, by_mallory, fixed] if first == "message" else [by_mallory, fixed, message])
    mine = max(removed(book)) if first == "retraction" else 1
    assert removed(book)[mine] is False and book.lines[mine].body == "mine"
    by_alice = retraction(3, "s1", by_nick="alicia", by_jid="alice@localhost/phone", sid="r2", room=ROOM)
    book.apply(logic.step(10, by_alice, book))
    assert removed(book)[mine] is True
