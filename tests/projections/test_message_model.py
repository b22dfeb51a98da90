"""The message model itself (``projections.messages``: ``step`` over a ``MemoryBook``, as the transcript view
drives it) says what the reference model (tests/reference_messages.py) says about every message, for any
history; tests/query_api/test_one_truth.py holds every view to the same, through the stores and the API."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings

from projections.memory_book import MemoryBook
from projections.transcripts import logic
from tests.query_api.test_one_truth import histories, realise
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
