"""The log read as rows (``EventStore.read_log_rows``): what projections read."""

from __future__ import annotations

from archive.codec import from_msgpack
from tests.factories import message


def test_rows_are_the_log_page_by_page(event_store):
    event_store.append([message(t, f"m{t}") for t in range(5)])
    records = list(event_store.read_log())
    first = event_store.read_log_rows(0, 3)
    rest = event_store.read_log_rows(first[-1][0], 3)
    rows = [*first, *rest]
    assert [len(first), len(rest)] == [3, 2]
    assert [(p, from_msgpack(bytes(state))) for p, state in rows] == [(r.position, r.event) for r in records]
    assert event_store.read_log_rows(rows[-1][0], 3) == []
