"""The book's shortcut for a plain post (``MemoryBook.post``) is the message model's own rule: a book
driven by it, falling back to ``step`` for anything else, ends exactly as one driven by ``step`` and
``apply`` alone, whatever the order of posts, corrections and retractions."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from archive import events as ev
from projections.messages import MemoryBook
from projections.transcripts import logic

from tests.factories import make, message

from .test_properties import events


def _by_step(book: MemoryBook, position: int, event) -> None:
    book.apply(logic.step(position, event, book))


def _by_post(book: MemoryBook, position: int, event) -> None:
    if not book.post(position, event):
        _by_step(book, position, event)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=40))
@example([make(ev.MessageCorrected, 1, nick="ann", replaces_id="x1", body="fixed"),  # before its message
          message(2, "fxed", "ann", message_id="x1")])
def test_a_book_fed_posts_by_the_shortcut_ends_as_one_fed_every_event_by_step(log):
    books = {"step": MemoryBook(), "post": MemoryBook()}
    for position, event in enumerate(log, start=1):
        _by_step(books["step"], position, event)
        _by_post(books["post"], position, event)
    plain, short = books["step"], books["post"]
    assert (short.lines, short.refs, short.awaited, short.dropped) == (plain.lines, plain.refs, plain.awaited,
                                                                       plain.dropped)
