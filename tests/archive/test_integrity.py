"""Hash chains on both stores: rows edited or deleted behind the store's back are found and named."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta

import psycopg
import pytest

from archive import chain
from archive.application import StoreLocation, open_event_store
from archive.codec import to_msgpack
from archive.events import COMPLIANCE_STREAM, ChainCheckpoint
from archive.integrity import verify_integrity, write_checkpoint
from archive.retention import purge
from archive.settings import RetentionSettings
from projections.message_groups import message_groups
from tests.archive.old_schema import downgrade
from tests.factories import T0, message

ROOM = "lobby@conference.localhost"
OTHER = "dev@conference.localhost"


def run_sql(store_url: str, sql: str, params: tuple = ()) -> None:
    """Change the store directly, as someone with database access could."""
    location = StoreLocation.parse(store_url)
    if location.kind != "sqlite":  # the log's table, which also holds the side index's columns
        sql = sql.replace("stored_events", "archive_store_events").replace("archive_event_index", "archive_store_events")
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            conn.execute(sql, params)
        return
    with psycopg.connect(host=location.host, user=location.user, dbname=location.dbname, autocommit=True,
                         options=f"-c search_path={location.schema}") as conn:
        conn.execute(sql.replace("?", "%s"), params)


def fill(store, n=6):
    store.append([message(t, body=f"m{t}", room=ROOM if t % 3 else OTHER) for t in range(n * 3 // 2)])


def test_an_untouched_store_verifies_and_each_link_chains_the_previous(event_store):
    fill(event_store)
    report = verify_integrity(event_store)
    assert report.ok and report.events == 9 and report.unchained == 0
    links = [r for r in event_store.stream_links(ROOM)]
    previous = chain.genesis(ROOM)
    for row in links:
        previous = chain.link(previous, row.version, row.state)
        assert row.link == previous[:16]  # a prefix stored: the head holds the whole link
    assert {h.stream: h.link for h in event_store.chain_heads()}[ROOM] == previous.hex()


def test_a_link_hashes_the_previous_link_the_eight_byte_version_and_the_stored_bytes():
    # The links of existing stores: the previous link as bytes or as the bytearray SQLite's append holds.
    previous, state = chain.genesis(ROOM), to_msgpack(message(1, room=ROOM))
    want = hashlib.sha256(previous + (300).to_bytes(8, "big") + state).digest()
    assert chain.link(previous, 300, state) == chain.link(bytearray(previous), 300, bytearray(state)) == want


def test_an_edited_row_is_named_with_its_room_version_and_position(event_store, store_url):
    fill(event_store)
    victim = list(event_store.read_room(ROOM))[2]
    forged = to_msgpack(message(0, body="I never said that", room=ROOM))
    run_sql(store_url, "UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=3",
            (forged, ROOM))
    report = verify_integrity(event_store)
    assert not report.ok
    (broken,) = [s.broken for s in report.streams if s.broken]
    assert (broken.stream, broken.version, broken.position) == (ROOM, 3, victim.position)
    assert "no longer hashes" in broken.problem
    assert verify_integrity(event_store, OTHER).ok


def test_a_store_with_whole_links_stored_verifies_and_its_edits_are_found(event_store, store_url, monkeypatch):
    # Stores written before the prefix was stored hold every event's whole link: it compares as it is.
    monkeypatch.setattr(chain, "STORED_LINK", 32)
    fill(event_store)
    monkeypatch.undo()
    event_store.append([message(t, body=f"m{t}", room=ROOM) for t in range(20, 23)])
    assert {len(link) for link in event_store.stream_link_map(ROOM).values()} == {16, 32}
    assert verify_integrity(event_store).ok
    run_sql(store_url, "UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=2",
            (to_msgpack(message(0, body="forged", room=ROOM)), ROOM))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert (broken.stream, broken.version) == (ROOM, 2) and "no longer hashes" in broken.problem


def test_a_stored_link_cut_shorter_than_the_prefix_is_broken(event_store, store_url):
    fill(event_store)
    link = event_store.stream_link_map(ROOM)[3]
    run_sql(store_url, "UPDATE archive_event_index SET chain=? WHERE originator_id=? AND originator_version=3",
            (link[:4], ROOM))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert (broken.stream, broken.version) == (ROOM, 3) and "no longer hashes" in broken.problem


def test_the_recorded_head_is_compared_whole(event_store, store_url):
    # Events store a prefix of their links: the last link's other half is compared in the head.
    fill(event_store)
    head = {h.stream: h for h in event_store.chain_heads()}[ROOM]
    forged = bytes.fromhex(head.link[:32]) + bytes(16)
    run_sql(store_url, "UPDATE archive_chain_heads SET link=? WHERE stream=?", (forged, ROOM))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert (broken.stream, broken.version) == (ROOM, head.version) and "recorded chain head" in broken.problem


def test_a_deleted_row_in_the_middle_is_named(event_store, store_url):
    fill(event_store)
    run_sql(store_url, "DELETE FROM stored_events WHERE originator_id=? AND originator_version=2", (ROOM,))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert (broken.stream, broken.version) == (ROOM, 2)
    assert "version(s) 2 deleted" in broken.problem


def test_a_row_added_to_the_log_behind_the_stores_back_breaks_its_stream(event_store, store_url):
    """Not only rows the store walks by version: SQLite's log has no version key of its own, and a row
    written there without its side row would not be walked."""
    fill(event_store)
    forged = to_msgpack(message(9, body="I never said that", room=ROOM))
    run_sql(store_url, "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
            "SELECT originator_id, 7, topic, ? FROM stored_events WHERE originator_id=? AND originator_version=1",
            (forged, ROOM))
    report = verify_integrity(event_store)
    assert [s.broken.stream for s in report.streams if s.broken] == [ROOM]


def test_deleting_the_last_rows_contradicts_the_recorded_head_and_the_checkpoint(event_store, store_url):
    fill(event_store)
    first = write_checkpoint(event_store)
    assert isinstance(first, ChainCheckpoint) and {h.stream for h in first.heads} == {ROOM, OTHER}
    assert write_checkpoint(event_store, first) is None  # nothing moved
    run_sql(store_url, "DELETE FROM stored_events WHERE originator_id=? AND originator_version>=5", (ROOM,))
    run_sql(store_url, "DELETE FROM archive_event_index WHERE originator_id=? AND originator_version>=5", (ROOM,))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert (broken.stream, broken.version) == (ROOM, 5) and "5-6 deleted" in broken.problem
    # Covering the tracks in the heads table too: the checkpoint still knows.
    run_sql(store_url, "DELETE FROM archive_chain_heads WHERE stream=?", (ROOM,))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert broken.version == 5 and "checkpoint" in broken.problem


def test_the_checkpoint_stream_is_chained_and_not_a_room(event_store, store_url):
    fill(event_store)
    write_checkpoint(event_store)
    assert COMPLIANCE_STREAM not in event_store.rooms()
    assert COMPLIANCE_STREAM in event_store.streams()
    run_sql(store_url, "UPDATE stored_events SET state=? WHERE originator_id=?",
            (to_msgpack(message(0, room=COMPLIANCE_STREAM)), COMPLIANCE_STREAM))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert broken.stream == COMPLIANCE_STREAM


def test_a_store_made_before_chaining_is_upgraded_in_place_and_chains_from_a_genesis(store_url):
    with open_event_store(store_url) as store:
        store.append([message(t, room=ROOM) for t in range(3)])
    downgrade(store_url, chained=False)  # back to the schema before chaining: no link column, no heads table
    with open_event_store(store_url) as store:
        store.append([message(t, room=ROOM) for t in range(3, 5)])
        report = verify_integrity(store)
        assert report.ok and (report.events, report.unchained) == (2, 3)
        (head,) = [h for h in store.chain_heads() if h.stream == ROOM]
        assert (head.version, head.genesis_version) == (5, 4)
    run_sql(store_url, "UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=4",
            (to_msgpack(message(9, room=ROOM)), ROOM))
    with open_event_store(store_url) as store:
        assert verify_integrity(store).streams[0].broken.version == 4


def test_erasing_links_cannot_move_the_genesis_forward(event_store, store_url):
    fill(event_store)
    write_checkpoint(event_store)
    run_sql(store_url, "UPDATE archive_event_index SET chain=NULL WHERE originator_id=? AND originator_version<=2", (ROOM,))
    run_sql(store_url, "UPDATE archive_chain_heads SET genesis_version=3 WHERE stream=?", (ROOM,))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert (broken.version, broken.problem) == (1, "chain link missing")


@pytest.mark.parametrize("flags", [["--integrity"], ["--integrity", "--room", ROOM], ["--integrity", "--json"]])
def test_verify_integrity_from_the_command_line(tmp_path, flags, capsys):
    from chat_archive.cli import main

    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        fill(store)
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{url}"\n')
    assert main(["--config", str(config), "verify", *flags]) == 0
    assert "ok" in capsys.readouterr().out
    run_sql(url, "DELETE FROM stored_events WHERE originator_id=? AND originator_version=2", (ROOM,))
    assert main(["--config", str(config), "verify", *flags]) == 1
    out = capsys.readouterr().out
    assert ROOM in out and "deleted" in out
    assert main(["--config", str(config), "verify", "--integrity", "--room", "nope@x"]) == 1


def test_the_checkpoint_thread_records_heads_at_start_and_at_each_interval(event_store):
    import threading

    from archive.integrity import Checkpoints, compliance_records
    from chat_archive.process import Periodic

    fill(event_store)
    stop = threading.Event()
    thread = Periodic("checkpoints", 0.05, stop, Checkpoints(event_store).write)
    try:
        _wait_for(lambda: len(list(compliance_records(event_store, ChainCheckpoint))) == 1)
        event_store.append([message(100, room=ROOM)])
        _wait_for(lambda: len(list(compliance_records(event_store, ChainCheckpoint))) == 2)
    finally:
        stop.set()
        thread.join()
    last = list(compliance_records(event_store, ChainCheckpoint))[-1]
    assert {h.stream: h.version for h in last.heads} == {ROOM: 7}  # only what moved


def _wait_for(condition, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_purge_of_a_stream_not_chained_yet_keeps_its_versions_going(store_url):
    """A stream archived before chaining whose tail a purge deletes goes on after the purged versions: a
    version a purge record names is never stored again, with another event."""
    with open_event_store(store_url) as store:
        store.append([message(t, room=ROOM) for t in range(3)])
    downgrade(store_url, chained=False)  # a stream with no chain head: its versions are its rows'
    with open_event_store(store_url) as store:
        (record,) = [purge(store, RetentionSettings(default_days=1), together=message_groups,
                           now=T0 + timedelta(days=10))]
        assert [(s.stream, s.first, s.last) for s in record.spans] == [(ROOM, 1, 3)]
        assert verify_integrity(store).ok
    with open_event_store(store_url) as store:  # a new process: nothing kept in memory
        (appended,) = store.append([message(10 * 86400, room=ROOM)])
        assert [v for v, _ in store.read_room_versions(ROOM)] == [4]
        report = verify_integrity(store)
        assert report.ok and [(s.events, s.unchained) for s in report.streams if s.stream == ROOM] == [(1, 0)]
        (head,) = [h for h in store.chain_heads() if h.stream == ROOM]
        assert (head.version, head.genesis_version) == (4, 4)
