"""The book's shortcut for a plain post (``MemoryBook.post_each``) is the message model's own rule: a book
driven by it, falling back to ``step`` for anything else, ends exactly as one driven by ``step`` and
``apply`` alone, whatever the order of posts, corrections and retractions; so does the search index's
(``IndexBook.post``)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from archive import events as ev
from archive.events import Recorded
from projections import messages
from projections.memory_book import MemoryBook
from projections.search.book import IndexBook
from projections.transcripts import logic

from tests.factories import make, message

from .test_properties import IDS, events, ids, nicks, rooms, times

# Posts with every field a line takes from one drawn: the shortcut makes the line itself (``post_line``).
_maybe_text = st.none() | st.sampled_from(["", "t1"])
posts = st.builds(
    lambda t, room, nick, named, ref, ref2, thread, capture, jid, occupant_id, kept: make(
        ev.MessagePosted, t, room, nick=nick, body="hi" if kept else "", body_kept=kept, stanza_id=named and (named if named in IDS else f"s-{ref}-{t}"),
        message_id=ref, origin_id=ref2, thread=thread, capture=capture, jid=jid, occupant_id=occupant_id),
    # a stanza-id of its own, none, or one other posts carry as their ids (a squat)
    times, rooms, nicks, st.sampled_from([None, "own", *IDS]), ids, st.none() | ids, _maybe_text,
    st.sampled_from(ev.Capture), _maybe_text,
    _maybe_text,
    st.booleans(),  # False: a post read from a tombstone, its text not kept
)
log_events = events | posts


def _by_step(book: MemoryBook, position: int, event) -> None:
    book.apply(logic.step(position, event, book))


@settings(max_examples=300, deadline=None)
@given(st.lists(log_events, max_size=40))
@example([make(ev.MessageCorrected, 1, nick="ann", replaces_id="x1", body="fixed"),  # before its message
          message(2, "fxed", "ann", message_id="x1")])
def test_a_book_fed_posts_by_the_shortcut_ends_as_one_fed_every_event_by_step(log):
    """The whole log as one page to ``MemoryBook.post_each``: the posts it takes and the events it hands to
    ``step`` in their turns leave the book as ``step`` and ``apply`` of every event do."""
    plain, short = MemoryBook(), MemoryBook()
    for position, event in enumerate(log, start=1):
        _by_step(plain, position, event)
    short.post_each([Recorded(position, event) for position, event in enumerate(log, start=1)],
                    lambda position, event: _by_step(short, position, event))
    assert (short.lines, short.refs, short.owners, short.awaited, short.dropped) == (
        plain.lines, plain.refs, plain.owners, plain.awaited, plain.dropped)


def _index_book() -> IndexBook:
    return IndexBook(lambda room, ref, owned: [], lambda key: None, position=0, hold=3, window=1000)


def _index_state(book: IndexBook, written: list) -> tuple:
    return (written, book.pending, list(book._queue), book._refs, book._owners, book._awaited, book._held,
            book.take_deletes())


@settings(max_examples=300, deadline=None)
@given(st.lists(log_events, max_size=40))
@example([make(ev.MessageCorrected, 1, nick="ann", replaces_id="x1", body="fixed"),  # before its message
          message(2, "fxed", "ann", message_id="x1")])
def test_an_index_book_fed_posts_by_the_shortcut_ends_as_one_fed_every_event_by_step(log):
    """The search index's book (``IndexBook.post``): the same lines written when due, the same left pending."""
    plain, short = _index_book(), _index_book()
    written: dict[str, list] = {"step": [], "post": []}
    for position, event in enumerate(log, start=1):
        plain.apply(position, messages.step(position, event, plain))
        if not (type(event) is ev.MessagePosted and short.post(position, event)):
            short.apply(position, messages.step(position, event, short))
        written["step"] += plain.due(position)
        written["post"] += short.due(position)
    assert _index_state(short, written["post"]) == _index_state(plain, written["step"])
