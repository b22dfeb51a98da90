"""The log read a page at a time (``EventStore.read_log_page``): what projections read."""

from __future__ import annotations

from archive.codec import from_msgpack_array
from tests.factories import message


def test_pages_are_the_log_in_order_and_empty_at_its_end(event_store):
    event_store.append([message(t, f"m{t}") for t in range(5)])
    records = list(event_store.read_log())
    first = event_store.read_log_page(0, 3)
    rest = event_store.read_log_page(first.positions[-1], 3)
    assert [len(first.positions), len(rest.positions)] == [3, 2]
    read = [(p, e) for page in (first, rest) for p, e in zip(page.positions, from_msgpack_array(page.states))]
    assert read == [(r.position, r.event) for r in records]
    end = event_store.read_log_page(rest.positions[-1], 3)
    assert list(end.positions) == [] and from_msgpack_array(end.states) == []


def test_a_page_starts_after_the_position_given_and_holds_each_event_beside_its_own(event_store):
    recorded = event_store.append([message(t, f"m{t}") for t in range(6)])
    page = event_store.read_log_page(recorded[1].position, 2)
    assert list(page.positions) == [recorded[2].position, recorded[3].position]
    assert from_msgpack_array(page.states) == [recorded[2].event, recorded[3].event]


def test_pages_hold_the_log_in_order_wherever_its_rows_lie_on_disk(event_store):
    # PostgreSQL joins a page's rows in the order its subquery sorts them (``log_reads._POSTGRES_LOG_PAGE``):
    # rows written again lie after the others in the table, and a page still holds them in log order.
    recorded = event_store.append([message(t, f"m{t}") for t in range(12)])
    _change_log(event_store, f"UPDATE {{table}} SET state=state WHERE {{key}}<={recorded[5].position}")
    pages = [event_store.read_log_page(0, 8)]
    pages.append(event_store.read_log_page(pages[0].positions[-1], 8))
    read = [(p, e) for page in pages for p, e in zip(page.positions, from_msgpack_array(page.states))]
    assert read == [(r.position, r.event) for r in recorded]


def test_a_page_holds_each_state_byte_for_byte(event_store):
    # SQLite joins a page's states as text and casts them back (``log_reads._SQLITE_LOG_PAGE``): a state's NUL
    # bytes and bytes that are no UTF-8 text (a time's, an integer's) must come back as they were stored.
    bodies = ["a\x00b", "\x00", "\u00e9\U0001f600\x7f", "x" * 70_000, ""]
    recorded = event_store.append([message(t, body) for t, body in enumerate(bodies)])
    page = event_store.read_log_page(0, 10)
    assert list(page.positions) == [r.position for r in recorded]
    assert [e.body for e in from_msgpack_array(page.states)] == bodies


def test_a_page_across_a_gap_in_the_positions_holds_each_position_as_it_is(event_store):
    # PostgreSQL sends a page's positions only where they are not consecutive (``log_reads._POSTGRES_LOG_PAGE``):
    # positions a rolled-back transaction took are never used, and a page across them must say which are.
    recorded = event_store.append([message(t, f"m{t}") for t in range(8)])
    gone = {recorded[2].position, recorded[3].position, recorded[6].position}
    _change_log(event_store, f"DELETE FROM {{table}} WHERE {{key}} IN ({','.join(map(str, sorted(gone)))})")
    kept = [r for r in recorded if r.position not in gone]
    first = event_store.read_log_page(0, 3)
    rest = event_store.read_log_page(first.positions[-1], 3)
    read = [(p, e) for page in (first, rest) for p, e in zip(page.positions, from_msgpack_array(page.states))]
    assert read == [(r.position, r.event) for r in kept]
    dense = event_store.read_log_page(recorded[6].position, 3)
    assert list(dense.positions) == [recorded[7].position]


def _change_log(event_store, statement: str) -> None:
    """Run ``statement`` on the store's table of events (``{table}``, its position column ``{key}``) directly."""
    recorder = event_store._recorder
    schema = getattr(recorder.datastore, "schema", None)
    table, key = (f'"{schema}"."{recorder.events_table_name}"', "notification_id") if schema else (
        recorder.events_table_name, "rowid")
    with recorder.datastore.transaction(commit=True) as c:
        c.execute(statement.format(table=table, key=key))
