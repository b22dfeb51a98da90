"""Finding a message by one of its ids in the committed index (``Committed.lines``) when other messages' ids
share its hash: ``rhash`` is two checksums, which can be solved for, so any number of messages may share it."""

from __future__ import annotations

from projections.lines import Line
from projections.search.documents import to_tantivy
from projections.search.projection import MAX_CANDIDATES, Committed, create_tantivy, open_tantivy
from projections.search.schema import ref_hash
from tests.factories import T0

ROOM = "lobby@conference.localhost"


def test_a_message_behind_more_colliding_messages_than_one_page_is_found(tmp_path):
    create_tantivy(tmp_path)
    index = open_tantivy(tmp_path)
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    writer.add_document(to_tantivy(Line(1, ROOM, T0, "message", nick="mallory", body="abuse", stanza_id="room-sid-1"))[0])
    for position in range(2, MAX_CANDIDATES + 3):  # newer: the page ordered by key, newest first, is theirs
        decoy, _ = to_tantivy(Line(position, ROOM, T0, "message", nick="mallory", body="x", stanza_id=f"d{position}"))
        decoy.add_unsigned("rhash", ref_hash(ROOM, "room-sid-1"))  # as an id chosen to collide would hash
        writer.add_document(decoy)
    writer.commit()
    index.reload()
    [found] = Committed(index.searcher()).lines(ROOM, "room-sid-1", False)
    assert found.body == "abuse"
