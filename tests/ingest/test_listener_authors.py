"""The listener in a room that gives no occupant-ids (Prosody's ``muc_occupant_id = false``), whose real JIDs it
sees (a server admin: an owner of every room): the archive tells authors apart by real JID, for retractions as
for corrections (XEP-0308 section 3, XEP-0424)."""

from __future__ import annotations

import pytest

from archive import events as ev
from projections.memory_book import MemoryBook
from projections.transcripts import logic
from tests.ingest.helpers import room_events, running_listener, wait_for_event, wait_joined
from tests.services.prosody import start_prosody, unique_room


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    server = start_prosody(tmp_path_factory.mktemp("prosody-no-ids"), muc_options={"muc_occupant_id": "false"})
    yield server
    server.stop()


def test_a_newcomer_in_the_author_s_freed_nick_can_neither_correct_nor_retract_her_message(prosody, people, event_store):
    """The reviewer's case: alice says something and leaves; bob joins as "alice", corrects and retracts her
    message. Both name bob's real JID, so the message model refuses both: alice's message stays as she wrote it
    in every view. (The retraction used to name only the nick and was taken for alice's: tombstoned in
    transcripts, search, the widget and RSMF, naming "alice" as the deleter. Failed on the old code.)"""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "nicks")
    alice.create_room(room, "alice")
    with running_listener(prosody, event_store, include=(room,)) as listener:
        wait_joined(listener, room)
        said = alice.say(room, "mine")
        alice.leave(room)
        bob.join(room, "alice")
        bob.correct(room, said["id"], "not hers")
        bob.retract(room, said["stanza_id"])
        bob.say(room, "done")
        wait_for_event(event_store, room, ("message", "alice", "done"))
    events = room_events(event_store, room)
    posted, corrected, retracted = (next(e for e in events if type(e) is kind)
                                    for kind in (ev.MessagePosted, ev.MessageCorrected, ev.MessageRetracted))
    assert (posted.jid, posted.occupant_id) == ("alice@localhost", None)
    assert (corrected.nick, corrected.jid) == ("alice", "bob@localhost")
    assert (retracted.by_nick, retracted.by_jid, retracted.target_id) == ("alice", "bob@localhost", said["stanza_id"])
    book = MemoryBook()
    for position, event in enumerate(events, start=1):
        book.apply(logic.step(position, event, book))
    mine = next(line for line in book.lines.values() if line.stanza_id == said["stanza_id"])
    assert (mine.body, mine.edited, mine.removed) == ("mine", False, None)
