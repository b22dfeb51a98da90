"""A searcher keeps the stored lines its searches read (``KeptLines``) for its later searches: every answer
is the one a reader that keeps nothing gives, also after commits that correct, retract and add messages, and
after a rebuild whose documents sit at the addresses of others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive import events as ev
from archive.events import Recorded
from projections.search import IndexLocation, Scope, SearchIndex, SearchIndexProjection, storedlines
from tests.factories import T0, message

SCOPES = [Scope(rooms=None), Scope(rooms=None, compliance=True)]
WORDS = ["deploy", "fox", "lazy", "cat"]


def _posts(first: int, n: int, shift: int) -> list[Recorded]:
    return [Recorded(first + i, message(0, f"{WORDS[(i + shift) % 4]} {WORDS[(i * 3 + shift) % 4]} {i}",
                                        stanza_id=f"s{first + i}", message_id=f"m{first + i}",
                                        occurred_at=T0 + timedelta(seconds=7 * (first + i) // 3)))
            for i in range(n)]


def _answers(index: SearchIndex) -> list:
    found = []
    for scope in SCOPES:
        for text in ("deploy", "fox lazy", "cat -fox", ""):
            for sort in ("newest", "oldest", "relevance"):
                cursor = None
                while True:
                    index.forget_known_totals()
                    page = index.search(text, scope, sort=sort, limit=9, cursor=cursor, facets=False)
                    found.append((text, sort, page))
                    cursor = page.next_cursor
                    if cursor is None:
                        break
    return found


def _fresh(location: IndexLocation) -> list:
    return _answers(SearchIndex(location, reload_interval=0))


@pytest.mark.parametrize("kept_lines", [storedlines.KEPT_LINES, 5])
def test_kept_lines_answer_as_a_reader_that_keeps_none(index_root, monkeypatch, kept_lines):
    monkeypatch.setattr(storedlines, "KEPT_LINES", kept_lines)  # 5: cleared again and again within one search
    location = IndexLocation(index_root / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=0)
    index = SearchIndex(location, reload_interval=0)
    position = 0
    for round_ in range(4):
        records = _posts(position + 1, 40, round_)
        position += len(records)
        at = T0 + timedelta(hours=1, minutes=round_)
        for target in range(max(1, position - 60), position, 7):  # earlier documents written again or retracted
            position += 1
            if target % 2:
                event = ev.MessageCorrected(room=records[0].event.room, occurred_at=at, recorded_at=at, nick="alice",
                                            replaces_id=f"m{target}", body=f"corrected {WORDS[target % 4]}")
            else:
                event = ev.MessageRetracted(room=records[0].event.room, occurred_at=at, recorded_at=at, target_id=f"s{target}")
            records.append(Recorded(position, event))
        projection.apply(records)
        projection.commit(position)
        assert _answers(index) == _answers(index) == _fresh(location)
    # A rebuild from another log: its documents sit at the addresses the kept lines were read from.
    fresh = projection.begin_rebuild()
    other = _posts(1, 150, 2)
    fresh.apply(other)
    fresh.commit(len(other))
    projection.finish_rebuild(fresh)
    assert _answers(index) == _fresh(location)
    projection.close()


def test_forgotten_lines_are_read_again(index_root, monkeypatch):
    # The bench's samples are a query's first search on a commit: a repeat made of kept lines is not.
    location = IndexLocation(index_root / "index")
    projection = SearchIndexProjection(location, heap_mb=20, hold=0)
    projection.apply(_posts(1, 40, 0))
    projection.commit(40)
    index = SearchIndex(location, reload_interval=3600)
    read = []
    decode = storedlines._decode_shown
    monkeypatch.setattr(storedlines, "_decode_shown", lambda blob: read.append(blob) or decode(blob))
    first = index.search("deploy", Scope(rooms=None), sort="newest", limit=5, facets=False)
    assert len(read) >= 5
    read.clear()
    assert index.search("deploy", Scope(rooms=None), sort="newest", limit=5, facets=False) == first
    assert not read
    index.forget_kept_lines()
    assert index.search("deploy", Scope(rooms=None), sort="newest", limit=5, facets=False) == first
    assert len(read) >= 5
    projection.close()
