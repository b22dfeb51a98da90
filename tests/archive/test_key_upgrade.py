"""A store made with an earlier side index (text idempotency keys, or keyed by the slot) is upgraded in place
on opening."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import psycopg
import pytest

from archive import events as ev
from archive.application import StoreLocation, open_event_store
from archive.integrity import verify_integrity, write_checkpoint
from archive.lease import LeaseHeld, StoreLease
from archive.retention import purge
from archive.settings import RetentionSettings
from projections.message_groups import message_groups
from tests.archive.old_schema import (
    FORGET_SET_UP,
    downgrade, downgrade_log_to_undeclared_rowid, downgrade_to_ordered, downgrade_to_slots, key_postgres_log_by_version,
    split_postgres,
)
from tests.factories import T0, at, make, message

LOBBY, DEV = "lobby@conference.localhost", "dev@conference.localhost"


def history():
    """Messages with stanza-ids and without, presence, near hour edges and in the middle, in two rooms."""
    return [
        *[message(t, stanza_id=f"s{t}", room=LOBBY if t % 2 else DEV) for t in (-3, -1, 0, 2, 1800, 3599, 7200)],
        message(5, body="no stanza-id", stanza_id=None, message_id="m5"),
        make(ev.OccupantJoined, 6, nick="bob"),
    ]


def side_index(store_url: str) -> set[tuple]:
    """The side index's rows: SQLite's side table, PostgreSQL's side columns of the log (or its earlier side table)."""
    location = StoreLocation.parse(store_url)
    sql = "SELECT originator_id, second, originator_version, digest, occurred_at, chain FROM {}"
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            return set(conn.execute(sql.format("archive_event_index")).fetchall())
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname,
                         options=f"-c search_path={location.schema}") as conn:
        split = conn.execute("SELECT to_regclass('archive_event_index')").fetchone()[0]
        table = "archive_event_index" if split else "archive_store_events"
        return {tuple(row) for row in conn.execute(sql.format(table)).fetchall()}


def side_index_btrees(store_url: str) -> list[str]:
    """The indexes beside the side table's own key (the store writes none but SQLite's of late events)."""
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            sql = "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='archive_event_index'"
            return [row[0] for row in conn.execute(sql).fetchall()]
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname) as conn:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname=%s AND tablename='archive_event_index'"
        names = [row[0] for row in conn.execute(sql, (location.schema,)).fetchall()]
        return [name for name in names if name != "archive_event_index_pkey"]


@pytest.mark.parametrize("earlier", [downgrade, downgrade_to_slots])
def test_an_old_store_is_upgraded_to_the_side_index_the_new_code_writes_and_keeps_working(store_url, earlier):
    with open_event_store(store_url) as store:
        store.append(history())
        write_checkpoint(store)
        lease = StoreLease(store, "listener")
        lease.acquire()
    written = side_index(store_url)
    assert earlier(store_url) == len(written) and side_index_btrees(store_url) == ["archive_event_index_walk"]
    with open_event_store(store_url) as store:
        assert side_index(store_url) == written  # the same digests, versions, times and links
        sqlite = StoreLocation.parse(store_url).kind == "sqlite"
        assert side_index_btrees(store_url) == (["archive_event_late"] if sqlite else [])
        # Nothing already stored is stored again, whether by the same time or a copy across an edge.
        assert store.append(history()) == []
        assert store.append([message(59, stanza_id="s-3", room=LOBBY, capture=ev.Capture.BACKFILL)]) == []
        assert len(store.append([message(8, stanza_id="new")])) == 1
        assert verify_integrity(store).ok
        assert [r.event.occurred_at for r in store.read_room(LOBBY, start=at(-2), end=at(1801))] == [at(-1), at(5),
                                                                                                  at(6), at(8)]
        with pytest.raises(LeaseHeld):
            StoreLease(store, "listener").acquire()
        purge(store, RetentionSettings(default_days=1), together=message_groups, now=T0 + timedelta(days=10))
        assert verify_integrity(store).ok and store.rooms() == [DEV, LOBBY]


def test_a_store_made_before_hash_chains_and_slots_is_upgraded_in_place(store_url):
    with open_event_store(store_url) as store:
        store.append(history())
    downgrade(store_url, chained=False)
    with open_event_store(store_url) as store:
        assert store.append(history()) == []
        store.append([message(9, stanza_id="new")])
        report = verify_integrity(store)
        assert report.ok and (report.events, report.unchained) == (1, len(history()))


def sqlite_indexes(path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        sql = "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name=?"
        return sorted(row[0] for row in conn.execute(sql, (table,)).fetchall())


def written_with_late_events(url: str) -> tuple:
    """A store's log, a ranged read (late events included) and its streams' links, written by today's code."""
    with open_event_store(url) as store:
        store.append(history())
        store.append([message(t, stanza_id=f"late{t}", room=LOBBY) for t in (4, 1799, -2)])  # older than the room's newest
        write_checkpoint(store)
        return list(store.read_log_versions()), ranged_positions(store), streams_links(store), side_index(url)


def ranged_positions(store) -> list[int]:
    return [r.position for r in store.read_room(LOBBY, start=at(-2), end=at(3600), page_size=2)]


def streams_links(store) -> dict:
    return {s: list(store.stream_links(s)) for s in store.streams()}


def assert_upgraded_store_works(url: str, written: tuple) -> None:
    """The store reopened holds the same events at the same positions and versions, the same side rows, ranged
    reads and links; stored events are not stored again, new ones go on after them; chains and purges hold."""
    log, ranged, streams, side = written
    with open_event_store(url) as store:
        assert side_index(url) == side
        assert list(store.read_log_versions()) == log
        assert ranged_positions(store) == ranged
        assert streams_links(store) == streams
        assert store.append(history()) == [] and store.append([message(4, stanza_id="late4", room=LOBBY)]) == []
        (new,) = store.append([message(8, stanza_id="new", room=LOBBY)])
        assert new.position == log[-1][1].position + 1
        assert [v for v, _ in store.read_room_versions(LOBBY)][-1] == max(v for v, r in log if r.event.room == LOBBY) + 1
        assert verify_integrity(store).ok
        purge(store, RetentionSettings(default_days=1), together=message_groups, now=T0 + timedelta(days=10))
        assert verify_integrity(store).ok and store.rooms() == [DEV, LOBBY]


def test_a_sqlite_store_with_the_log_keyed_by_version_is_rebuilt_in_place_keeping_every_position(tmp_path):
    """Issue 15's second SQLite shape (side index keyed (room, second, version), the log's own (room, version)
    key beside it) becomes today's."""
    path = tmp_path / "events.sqlite"
    url = f"sqlite:///{path}"
    written = written_with_late_events(url)
    downgrade_to_ordered(path)
    assert sqlite_indexes(path, "stored_events") == ["sqlite_autoindex_stored_events_1"]
    with open_event_store(url):
        assert sqlite_indexes(path, "stored_events") == []  # the log lost its (room, version) key
        assert sqlite_indexes(path, "archive_event_index") == ["archive_event_late"]
    assert_upgraded_store_works(url, written)


def postgres_tables(url: str) -> list[str]:
    location = StoreLocation.parse(url)
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname) as conn:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname=%s ORDER BY tablename"
        return [row[0] for row in conn.execute(sql, (location.schema,)).fetchall()]


def test_a_postgres_store_with_a_side_table_has_it_moved_into_its_log_in_place(postgres_url):
    """PostgreSQL's side table keyed (room, second, version) beside the log (issue 15's last shape there) is moved
    into the log's own rows, in one transaction, and dropped."""
    written = written_with_late_events(postgres_url)
    location = StoreLocation.parse(postgres_url)
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname,
                         options=f"-c search_path={location.schema}") as conn:
        assert split_postgres(conn) == len(written[3])
    assert "archive_event_index" in postgres_tables(postgres_url)
    with open_event_store(postgres_url):
        assert "archive_event_index" not in postgres_tables(postgres_url)
    assert_upgraded_store_works(postgres_url, written)


def postgres_connection(url: str) -> psycopg.Connection:
    location = StoreLocation.parse(url)
    return psycopg.connect(host=location.host, user=location.user, dbname=location.dbname,
                           options=f"-c search_path={location.schema}")


def postgres_log_indexes(url: str) -> list[str]:
    with postgres_connection(url) as conn:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname=current_schema() AND tablename='archive_store_events'"
        return sorted(row[0] for row in conn.execute(sql).fetchall())


def postgres_highs(url: str) -> set[tuple]:
    with postgres_connection(url) as conn:
        return set(conn.execute("SELECT originator_id, originator_version, high FROM archive_store_events").fetchall())


def test_a_postgres_log_keyed_by_version_is_upgraded_in_place_to_the_order_of_the_rooms_highest_seconds(postgres_url):
    """PostgreSQL's log before layout J (the library's (room, version) key, the walk index (room, second, version))
    loses both; each row gets the room's highest second so far, as the store writes it, in the new two indexes."""
    written = written_with_late_events(postgres_url)
    highs = postgres_highs(postgres_url)
    with postgres_connection(postgres_url) as conn:
        key_postgres_log_by_version(conn)
    assert "archive_store_events_pkey" in postgres_log_indexes(postgres_url)
    with open_event_store(postgres_url):
        assert postgres_highs(postgres_url) == highs
        assert [name for name in postgres_log_indexes(postgres_url) if name.startswith("archive_")] == [
            "archive_event_late", "archive_event_order", "archive_store_events_notification_id_idx"]
    assert_upgraded_store_works(postgres_url, written)


def rooms_collation(url: str) -> str:
    location = StoreLocation.parse(url)
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname) as conn:
        return conn.execute(
            "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid=a.attcollation "
            "WHERE a.attrelid=%s::regclass AND a.attname='originator_id'",
            (f'"{location.schema}".archive_store_events',),
        ).fetchone()[0]


def test_a_postgres_log_with_rooms_in_the_database_collation_has_them_compared_as_bytes_in_place(postgres_url):
    """Earlier logs kept the rooms in the database's collation (its locale's strcoll in every b-tree comparison);
    opened, the column is collated "C" with every row, position, version and link kept."""
    written = written_with_late_events(postgres_url)
    location = StoreLocation.parse(postgres_url)
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname,
                         options=f"-c search_path={location.schema}") as conn:
        conn.execute('ALTER TABLE archive_store_events ALTER COLUMN originator_id TYPE text COLLATE "default"')
        conn.execute(FORGET_SET_UP)
    assert rooms_collation(postgres_url) == "default"
    with open_event_store(postgres_url):
        assert rooms_collation(postgres_url) == "C"
    assert_upgraded_store_works(postgres_url, written)


def log_columns(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return [(row[1], row[5]) for row in conn.execute("PRAGMA table_info(stored_events)").fetchall()]


def test_a_sqlite_log_whose_position_is_an_undeclared_rowid_is_rebuilt_in_place_and_vacuum_keeps_it(tmp_path):
    """The log of the shape before: its position an undeclared rowid, which VACUUM renumbers. Opening the store
    declares it, every event at its position (a purge's gaps too), and a VACUUM then changes none."""
    path = tmp_path / "events.sqlite"
    url = f"sqlite:///{path}"
    with open_event_store(url) as store:
        store.append(history())
        # gaps in the positions
        purge(store, RetentionSettings(rooms={DEV: 1}), together=message_groups, now=T0 + timedelta(days=10))
        log = list(store.read_log_versions())
    downgrade_log_to_undeclared_rowid(path)
    assert ("rowid", 1) not in log_columns(path)
    with open_event_store(url) as store:
        assert ("rowid", 1) in log_columns(path)
        assert list(store.read_log_versions()) == log
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    with open_event_store(url) as store:
        assert list(store.read_log_versions()) == log
        (new,) = store.append([message(8, stanza_id="new", room=LOBBY)])
        assert new.position == log[-1][1].position + 1
        assert verify_integrity(store).ok


def _open_and_count(url: str, results) -> None:
    try:
        with open_event_store(url) as store:
            results.put(sum(1 for _ in store.read_log()))
    except Exception as e:  # noqa: BLE001 - the test reports what each process met
        results.put(repr(e))


def _open_together(url: str, count: int) -> list:
    import multiprocessing

    results = multiprocessing.Queue()
    openers = [multiprocessing.Process(target=_open_and_count, args=(url, results)) for _ in range(count)]
    for p in openers:
        p.start()
    for p in openers:
        p.join(60)
    return [results.get(timeout=5) for _ in openers]


def _many_events(url: str) -> int:
    with open_event_store(url) as store:
        return len(store.append([message(t, stanza_id=f"s{t}", room=f"r{t % 7}@conference.localhost")
                                 for t in range(20_000)]))


def test_processes_opening_an_earlier_store_together_all_open_it(tmp_path):
    """`up` starts several processes on one store: each opening read the log as earlier, one upgraded it, and the
    others failed ("database is locked") on upgrading their stale read; now the first takes the write lock."""
    path = tmp_path / "events.sqlite"
    url = f"sqlite:///{path}"
    count = _many_events(url)
    downgrade_log_to_undeclared_rowid(path)
    assert _open_together(url, 4) == [count] * 4


def test_processes_opening_a_postgres_log_keyed_by_version_together_all_open_it(postgres_url):
    """The upgrade of PostgreSQL's log is made by the first opener holding the schema's DDL lock; the others
    wait for it and find the log upgraded."""
    count = _many_events(postgres_url)
    with postgres_connection(postgres_url) as conn:
        key_postgres_log_by_version(conn)
    assert _open_together(postgres_url, 4) == [count] * 4
    assert "archive_store_events_pkey" not in postgres_log_indexes(postgres_url)
