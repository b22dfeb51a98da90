"""Opening a store or views whose schema is current takes no table lock (``archive.schema_ddl``): a process
opening it while a long read runs (an export, a replay, a rebuild reading the log) neither waits for the read nor
holds up the writers behind it; an earlier store is still set up when opened, giving way to a long read."""

from __future__ import annotations

import sqlite3
import threading
import time

import psycopg
from archive import schema_ddl
from archive.application import StoreLocation, open_event_store
from projections.viewdb_backends import open_view_recorder
from tests.factories import message
from tests.services.postgres import POSTGRES_DSN


def in_thread(work) -> tuple[threading.Thread, dict]:
    """``work()`` started in a thread; the dict gets its time taken (``s``) or its error when it ends."""
    done: dict = {}

    def run() -> None:
        began = time.monotonic()
        try:
            work()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            done["error"] = e
        done["s"] = time.monotonic() - began

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def long_read(url: str, table: str) -> psycopg.Connection:
    """A connection inside a read transaction of ``table`` (holding its ACCESS SHARE lock), as an export's."""
    schema = StoreLocation.parse(url).schema
    conn = psycopg.connect(POSTGRES_DSN)
    conn.execute(f'SELECT count(*) FROM "{schema}".{table}').fetchone()
    return conn


def opened_and_appended_meanwhile(url: str, writer, table: str = "archive_store_events") -> tuple[dict, dict]:
    """Open the store at ``url`` while a long read of ``table`` runs, and append through ``writer`` meanwhile;
    each one's time (or error) once the read ended, after 2 s at most."""
    reader = long_read(url, table)
    try:
        opening, opened = in_thread(lambda: open_event_store(url).close())
        time.sleep(0.3)
        appending, appended = in_thread(lambda: writer.append([message(t=5, body="meanwhile")]))
        appending.join(2)
        opening.join(2 - min(2, appended.get("s", 2)))
    finally:
        reader.close()  # the read ends: whatever waited for it goes on
    opening.join(30)
    appending.join(30)
    return opened, appended


def test_a_current_postgres_store_opens_at_once_beside_a_long_read_and_holds_up_no_append(postgres_url):
    with open_event_store(postgres_url) as writer:
        writer.append([message(t=1)])
        opened, appended = opened_and_appended_meanwhile(postgres_url, writer)
    assert "error" not in opened and "error" not in appended
    assert opened["s"] < 1, "the open waited for the long read"
    assert appended["s"] < 1, "the append waited behind the open"


def test_an_earlier_postgres_store_is_set_up_when_opened_giving_way_to_a_long_read(postgres_url, monkeypatch):
    monkeypatch.setattr(schema_ddl, "LOCK_WAIT", 0.3)
    monkeypatch.setattr(schema_ddl, "RETRY_PAUSE", 0.2)
    schema = StoreLocation.parse(postgres_url).schema
    with open_event_store(postgres_url) as writer:
        writer.append([message(t=1)])
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:  # as an earlier version made it
            conn.execute(f'ALTER TABLE "{schema}".archive_store_events DROP COLUMN chain')
            conn.execute(f'DROP TABLE "{schema}".archive_rooms')
            conn.execute(f'DROP TABLE "{schema}".archive_schema')
        # The open's ALTER waits for the read (0.3 s at a time): the append behind it does not wait for the read.
        reader = long_read(postgres_url, "archive_store_events")
        try:
            opening, opened = in_thread(lambda: open_event_store(postgres_url).close())
            time.sleep(0.5)
            began = time.monotonic()
            with psycopg.connect(POSTGRES_DSN) as conn:  # a writer of the log (the listener's lock)
                conn.execute("SET lock_timeout = '3s'")
                conn.execute(f'LOCK TABLE "{schema}".archive_store_events IN EXCLUSIVE MODE')
                conn.rollback()
            writer_waited = time.monotonic() - began
            assert opening.is_alive(), "the open did not wait for the long read to alter the log"
        finally:
            reader.close()
        opening.join(30)
    assert "error" not in opened
    assert writer_waited < 1, "a writer waited behind the open's migration for the long read"
    with psycopg.connect(POSTGRES_DSN) as conn:
        columns = {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name=%s",
            (schema, "archive_store_events"))}
        assert {"chain", "high", "second"} <= columns
        assert conn.execute("SELECT to_regclass(%s)", (f'"{schema}".archive_rooms',)).fetchone()[0] is not None
    with open_event_store(postgres_url) as store:
        assert store.append([message(t=2, body="after")])


def test_postgres_views_open_at_once_beside_long_reads_of_the_log_and_the_views(postgres_url):
    recorder, close = open_view_recorder(postgres_url)
    close()
    with open_event_store(postgres_url) as writer:
        reader = long_read(postgres_url, "view_generations")
        try:
            opened, appended = opened_and_appended_meanwhile(postgres_url, writer)
            views, views_opened = in_thread(lambda: open_view_recorder(postgres_url)[1]())
            views.join(2)
        finally:
            reader.close()
        views.join(30)
    assert "error" not in views_opened and views_opened["s"] < 1
    assert opened["s"] < 1 and appended["s"] < 1


def test_a_current_sqlite_store_and_views_open_at_once_while_a_writer_holds_the_write_lock(tmp_path):
    url = f"sqlite:///{tmp_path}/events.sqlite"
    open_event_store(url).close()
    open_view_recorder(f"sqlite:///{tmp_path}/views.sqlite")[1]()
    held = []
    for name in ("events.sqlite", "views.sqlite"):
        conn = sqlite3.connect(tmp_path / name, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the listener mid-append, or a projection's commit
        held.append(conn)
    try:
        opening, opened = in_thread(lambda: open_event_store(url).close())
        views, views_opened = in_thread(lambda: open_view_recorder(f"sqlite:///{tmp_path}/views.sqlite")[1]())
        opening.join(2)
        views.join(2)
    finally:
        for conn in held:
            conn.rollback()
            conn.close()
    opening.join(30)
    views.join(30)
    assert "error" not in opened and opened["s"] < 1, "the open waited for the write lock"
    assert "error" not in views_opened and views_opened["s"] < 1


def test_an_earlier_store_missing_a_column_is_set_up_when_opened(postgres_url, drop="chain"):
    schema = StoreLocation.parse(postgres_url).schema
    open_event_store(postgres_url).close()
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{schema}".archive_store_events DROP COLUMN {drop}')
        conn.execute(f'DROP TABLE "{schema}".archive_schema')
    with open_event_store(postgres_url) as store:
        store.append([message(t=1)])
    with psycopg.connect(POSTGRES_DSN) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema=%s "
                            "AND table_name='archive_store_events' AND column_name=%s", (schema, drop)).fetchone()[0]


def test_processes_setting_up_a_new_postgres_store_and_its_views_together_all_open_it(postgres_url):
    """Set-ups take turns (the schema's advisory lock): none fails in the library's DDL, the record of the set-up
    is written once."""
    def open_both() -> None:
        open_event_store(postgres_url).close()
        open_view_recorder(postgres_url)[1]()

    started = [in_thread(open_both) for _ in range(4)]
    for thread, _ in started:
        thread.join(60)
    assert [done.get("error") for _, done in started] == [None] * 4
    schema = StoreLocation.parse(postgres_url).schema
    with psycopg.connect(POSTGRES_DSN) as conn:
        parts = [row[0] for row in conn.execute(f'SELECT part FROM "{schema}".archive_schema ORDER BY part')]
    assert parts == ["store archive_store_events", "views view_tracking"]
