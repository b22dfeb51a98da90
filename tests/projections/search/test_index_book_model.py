"""The search index's book (``IndexBook``), driven as the projection drives it (lines written when due,
commits, the index reopened from what was committed and the events after replayed, ids forgotten at
commits), says what the reference model (tests/reference_messages.py) says about every message, for any
history; tests/projections/test_message_model.py does the same for the transcript view's book."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import events as ev
from projections import messages
from projections.lines import Line, ids
from projections.search.book import IndexBook
from projections.search.documents import to_tantivy
from tests.projections.test_message_model import ROOM, shown
from tests.query_api.test_one_truth import histories, realise
from tests.reference_messages import Reference


class FakeIndex:
    """Documents by key: those committed, and the writer's (committed at ``commit``); ``lines`` and ``line``
    answer as ``projection.Committed`` does."""

    def __init__(self) -> None:
        self.committed: dict[int, Line] = {}
        self.writer: dict[int, Line] = {}

    def lines(self, room: str, ref: str, owned: bool) -> list[Line]:
        known = [line for line in self.committed.values() if line.room == room and ref in ids(line)
                 and (not owned or messages.owned(line, ref))]
        return sorted(known, key=lambda line: messages.owns(line, ref), reverse=True)

    def line(self, key: int) -> Line | None:
        return self.committed.get(key)


def _open(index: FakeIndex, position: int, hold: int, window: int) -> IndexBook:
    index.writer = dict(index.committed)  # what was not committed is lost with the process
    book = IndexBook(index.lines, index.line, position=position, hold=hold, window=window)
    for line in index.committed.values():
        if line.awaiting:
            book.hold_awaiting(line)
    return book


def _write(book: IndexBook, index: FakeIndex, lines: list[Line]) -> None:
    for key in book.take_deletes():
        index.writer.pop(key, None)
    for line in lines:
        index.writer[line.id] = line
    book.written(lines, [to_tantivy(line)[1] for line in lines])


def _indexed(events: list[ev.Event], hold: int, window: int, commits: list[int], crashes: list[int]) -> FakeIndex:
    """The index after ``events``: committed after each position in ``commits``; at each position in
    ``crashes`` (once) the process ends and the next one resumes from the last commit."""
    index = FakeIndex()
    book, committed_at, position, crashed = _open(index, 0, hold, window), 0, 0, set()
    while position < len(events):
        position += 1
        event = events[position - 1]
        if not (type(event) is ev.MessagePosted and book.post(position, event)):
            book.apply(position, messages.step(position, event, book))
        _write(book, index, book.due(position))
        if position in commits or position == len(events):
            _write(book, index, book.due(None))
            index.committed = dict(index.writer)
            book.committed(position)
            committed_at = position
        if position in crashes and position not in crashed:
            crashed.add(position)
            book, position = _open(index, committed_at, hold, window), committed_at
    return index


def _agrees(events: list[ev.Event], index: FakeIndex) -> None:
    reference = Reference()
    for position, event in enumerate(events, start=1):
        reference.feed(position, event)
    for compliance in (True, False):
        assert shown(SimpleNamespace(lines=index.committed), compliance=compliance) == reference.messages(
            compliance=compliance)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories(), hold=st.integers(0, 3), window=st.integers(1, 4), commits=st.lists(st.integers(1, 30)),
       crashes=st.lists(st.integers(1, 30)))
def test_the_index_book_says_what_the_reference_says_across_commits_and_restarts(history, hold, window, commits,
                                                                                 crashes):
    events = realise(history, ROOM)
    _agrees(events, _indexed(events, hold, window, commits, crashes))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(one=histories(), two=histories(), order=st.lists(st.booleans(), max_size=40), hold=st.integers(0, 3),
       window=st.integers(1, 4), commits=st.lists(st.integers(1, 60)))
def test_two_rooms_reusing_the_same_ids_stay_apart(one, two, order, hold, window, commits):
    a, b = realise(one, ROOM), realise(two, "other@conference.localhost")
    events = [(a if (first and a) or not b else b).pop(0) for first in order if a or b]
    events += a + b
    _agrees(events, _indexed(events, hold, window, commits, []))
