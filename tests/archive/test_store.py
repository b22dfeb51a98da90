"""The event store, on SQLite and on PostgreSQL alike (``event_store`` runs each test on both)."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing

import pytest

from archive import events as ev
from archive import postgres_copy
from archive.application import StoreLocation, open_event_store
from archive.batch_rows import ROW_CHUNK, BatchRows
from archive.codec import to_msgpack_list
from archive.errors import ConfigError, EventDecodeError, StoreError
from archive.events import Recorded
from archive.idempotency import slotted
from archive.integrity import verify_integrity
from archive.sqlite_files import PAGE_SIZE
from archive.sqlite_recorder import ROWS_PER_INSERT
from archive.store import CopiedChains
from tests.factories import at, make, message


def test_appended_events_come_back_in_order_with_increasing_positions(event_store):
    batch = [message(t, body=f"m{t}") for t in range(5)]
    recorded = event_store.append(batch)
    positions = [r.position for r in recorded]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert [r.event for r in recorded] == batch
    assert list(event_store.read_log()) == recorded
    assert event_store.head() == positions[-1]


def test_appending_the_same_batch_twice_leaves_one_copy(event_store):
    batch = [message(t) for t in range(10)] + [make(ev.OccupantJoined, 1, nick="bob")]
    assert len(event_store.append(batch)) == 11
    assert event_store.append(batch) == []
    assert len(list(event_store.read_log())) == 11


def test_a_replayed_message_is_not_stored_again_whatever_its_capture_and_time(event_store):
    event_store.append([message(0, stanza_id="s1")])
    replay = message(5, stanza_id="s1", capture=ev.Capture.HISTORY)
    backfill = message(9, stanza_id="s1", capture=ev.Capture.BACKFILL)
    assert event_store.append([replay, backfill, message(10, stanza_id="s2")])[0].event.stanza_id == "s2"
    assert [r.event.stanza_id for r in event_store.read_log()] == ["s1", "s2"]


def test_a_batch_size_below_one_is_refused_not_taken_as_nothing_to_store(event_store):
    with pytest.raises(ValueError, match="batch_size"):
        event_store.append([message(1)], batch_size=0)


def test_duplicates_inside_one_batch_are_stored_once(event_store):
    recorded = event_store.append([message(0, stanza_id="s1"), message(0, stanza_id="s1")])
    assert len(recorded) == 1


def test_a_partly_known_batch_appends_only_the_new_events(event_store):
    event_store.append([message(t) for t in range(3)])
    recorded = event_store.append([message(t) for t in range(6)])
    assert [r.event.occurred_at for r in recorded] == [at(3), at(4), at(5)]


def test_a_retried_batch_returns_the_positions_its_events_are_stored_at(event_store):
    event_store.append([message(t) for t in range(3)])
    # The first attempt holds known events and is rolled back; the retry draws its positions anew.
    recorded = event_store.append([message(t) for t in range(6)])
    later = event_store.append([message(t) for t in range(6, 8)])
    stored = {r.position: r.event for r in event_store.read_log()}
    assert [stored.get(r.position) for r in recorded + later] == [r.event for r in recorded + later]
    assert later[0].position > recorded[-1].position


@pytest.mark.parametrize("formatter", ["driver's C row formatter", "write_row (psycopg before 3.2)"])
def test_a_batch_of_several_row_chunks_is_stored_whole_in_order_and_chained(event_store, store_url, formatter, monkeypatch):
    # Its rows are made chunk by chunk while the recorder writes them (``archive.batch_rows``); on
    # PostgreSQL they are copied through the driver's private C formatter where it has one.
    if formatter.startswith("write_row"):
        if store_url.startswith("sqlite"):
            pytest.skip("SQLite copies nothing: one formatter case is enough")
        monkeypatch.setattr(postgres_copy, "format_row_binary", None)
    rooms = ["a@conference.localhost", "b@conference.localhost"]
    batch = [message(t, body=f"m{t}", room=rooms[t % 2]) for t in range(2 * ROW_CHUNK + 3)]
    recorded = event_store.append(batch)
    positions = [r.position for r in recorded]
    assert [r.event for r in recorded] == batch and positions == list(range(positions[0], positions[0] + len(batch)))
    assert list(event_store.read_log()) == recorded
    assert [r.event for r in event_store.read_room(rooms[1])] == batch[1::2]
    assert verify_integrity(event_store).ok
    assert event_store.append(batch) == []


NO_CHAINS = CopiedChains({}, {})


def test_a_copied_batch_refused_after_its_first_chunk_of_rows_leaves_nothing_stored(event_store):
    held = event_store.append([message(0, room="held@conference.localhost")])
    copies = [(v, Recorded(10 + v, message(v, room="new@conference.localhost"))) for v in range(1, ROW_CHUNK + 10)]
    copies.append((1, Recorded(ROW_CHUNK + 20, message(1, room="held@conference.localhost"))))  # 2nd chunk: version taken
    with pytest.raises(StoreError, match="holds version 1 already"):
        event_store.append_copies(copies, NO_CHAINS)
    assert list(event_store.read_log()) == held


def test_a_batch_of_several_insert_statements_is_stored_whole_in_each_rooms_order(event_store):
    # SQLite inserts ROWS_PER_INSERT rows a statement and the rest one a statement; the late events (older
    # than their room's newest) go to its index of late events too.
    n = 2 * ROWS_PER_INSERT + 3
    batch = [message(t if t % 7 else t - 5, room="a@c" if t % 3 else "b@c", stanza_id=f"s{t}") for t in range(n)]
    recorded = event_store.append(batch)
    assert [r.event for r in recorded] == batch and list(event_store.read_log()) == recorded
    for room in ("a@c", "b@c"):
        mine = [r for r in recorded if r.event.room == room]
        assert [v for v, _ in event_store.read_room_versions(room)] == list(range(1, len(mine) + 1))
        in_time = sorted(mine, key=lambda r: (int(r.event.occurred_at.timestamp()), r.position))
        assert list(event_store.read_room(room, start=at(-10), end=at(n), page_size=50)) == in_time
    assert event_store.append(batch) == []
    assert verify_integrity(event_store).ok


def test_read_log_pages_through_everything_after_a_position(event_store):
    recorded = event_store.append([message(t) for t in range(25)], batch_size=7)
    assert list(event_store.read_log(page_size=4)) == recorded
    assert list(event_store.read_log(recorded[9].position, page_size=4)) == recorded[10:]
    assert list(event_store.read_log(recorded[-1].position)) == []


def test_read_room_returns_only_that_room_in_order_and_filters_by_time(event_store):
    mixed = [message(t, room="a@c" if t % 2 else "b@c") for t in range(20)]
    event_store.append(mixed, batch_size=6)
    a_events = [r.event for r in event_store.read_room("a@c", page_size=3)]
    assert a_events == [e for e in mixed if e.room == "a@c"]
    window = [r.event.occurred_at for r in event_store.read_room("a@c", start=at(5), end=at(11), page_size=2)]
    assert window == [at(5), at(7), at(9)]
    assert event_store.rooms() == ["a@c", "b@c"]
    assert list(event_store.read_room("nobody@c")) == []


def test_read_room_carries_global_positions(event_store):
    event_store.append([message(t, room="a@c" if t % 2 else "b@c") for t in range(6)])
    by_position = {r.position: r.event for r in event_store.read_log()}
    for record in event_store.read_room("a@c"):
        assert by_position[record.position] == record.event


def test_a_reopened_store_continues_each_room(store_url):
    with open_event_store(store_url) as store:
        store.append([message(t) for t in range(3)])
    with open_event_store(store_url) as store:
        store.append([message(t) for t in range(3, 6)])
        assert [r.event.occurred_at for r in store.read_room("lobby@conference.localhost")] == [at(t) for t in range(6)]


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(store_url):
    # Two independent stores (connections) race on the same room with overlapping
    # batches: the optimistic concurrency conflicts must be absorbed by retries.
    stores = [open_event_store(store_url) for _ in range(3)]
    errors = []
    in_step = threading.Barrier(len(stores))

    def write(store, offset):
        try:
            for start in range(0, 60, 5):
                in_step.wait()  # every round, all writers race for the same versions
                store.append([message(t, stanza_id=f"s{t}") for t in range(start + offset, start + offset + 8)])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [r.event.stanza_id for r in stores[0].read_room("lobby@conference.localhost")]
    assert sorted(ids, key=lambda s: int(s[1:])) == [f"s{t}" for t in range(0, 65)]
    assert len(ids) == len(set(ids))
    for store in stores:
        store.close()


def test_a_writer_behind_another_goes_on_after_its_versions(store_url):
    """A writer's head of a room is stale once another process appended to it: its next batch takes the
    versions after the other's, none twice and none skipped (SQLite's log has no unique key refusing one)."""
    with open_event_store(store_url) as first, open_event_store(store_url) as second:
        first.append([message(1, stanza_id="a")])
        second.append([message(2, stanza_id="b")])
        first.append([message(3, stanza_id="c"), message(4, stanza_id="d")])
        second.append([message(5, stanza_id="e")])
        versions = [(v, r.event.stanza_id) for v, r in first.read_room_versions("lobby@conference.localhost")]
    assert versions == [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]


def test_a_non_event_is_rejected_and_nothing_of_its_batch_is_stored(event_store):
    with pytest.raises(EventDecodeError):
        event_store.append([message(0), {"type": "message_posted"}])
    assert list(event_store.read_log()) == []


@pytest.mark.parametrize("url", ["mysql://x", "sqlite://", "ftp:///tmp/x",
                                 # a schema is named in SQL as it is: other than a plain identifier it read as
                                 # SQL ("syntax error at or near ..." and the statement, over several lines)
                                 "postgresql://u@db/arch?schema=bad%20schema", "postgresql://u@db/arch?schema=a-b",
                                 "postgresql://u@db/arch?schema=x;drop", "postgresql://u@db/arch?schema=" + "s" * 64,
                                 # quoted in some statements, folded to lower case in others (the token store's
                                 # search_path): a schema created as "Chat", then looked for as chat
                                 "postgresql://u@db/arch?schema=Chat"])
def test_a_bad_store_url_is_a_config_error(url):
    with pytest.raises(ConfigError):
        StoreLocation.parse(url)


def test_an_unreachable_postgres_is_a_store_error():
    with pytest.raises(StoreError, match="cannot reach PostgreSQL"):
        open_event_store("postgresql://postgres@127.0.0.1:1/postgres")


def test_sqlite_urls_take_relative_and_absolute_paths():
    assert str(StoreLocation.parse("sqlite:///data/events.sqlite").path) == "data/events.sqlite"
    assert str(StoreLocation.parse("sqlite:////var/lib/x.sqlite").path) == "/var/lib/x.sqlite"
    pg = StoreLocation.parse("postgresql://u:p%40ss@db:6543/arch?schema=s1")
    assert (pg.host, pg.port, pg.user, pg.password, pg.dbname, pg.schema) == ("db", 6543, "u", "p@ss", "arch", "s1")


WRITER = """
import sys
from archive.application import open_event_store
from tests.factories import message
store = open_event_store(sys.argv[1])
for i in range(60):
    store.append([message(i * 10 + j, stanza_id=f"w{i}-{j}") for j in range(50)])
"""


def test_stores_can_be_opened_while_another_process_appends(store_url):
    # Opening runs table set-up; it must neither deadlock with a writer's locks nor
    # race another opener's DDL.
    import subprocess
    import sys

    open_event_store(store_url).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, store_url], stderr=subprocess.PIPE, text=True)
    opened = 0
    while writer.poll() is None or opened == 0:
        open_event_store(store_url).close()
        opened += 1
    assert writer.wait(timeout=120) == 0, writer.stderr.read()
    with open_event_store(store_url) as store:
        assert store.head() >= 3000


def test_a_time_ranged_read_is_in_room_order_and_pages_walk_an_index(event_store):
    """Room order: the whole second, then the order archived; a backfilled message of an
    earlier second comes before later seconds, within its second after what was archived first."""
    room = "w@c"
    event_store.append([message(t + 0.5, f"live {t}", room=room, stanza_id=f"l{t}") for t in range(10)])
    event_store.append([message(3.0, "backfilled", room=room, stanza_id="b3")])  # archived last
    bodies = [r.event.body for r in event_store.read_room(room, start=at(2), end=at(6), page_size=2)]
    assert bodies == ["live 2", "live 3", "backfilled", "live 4", "live 5"]
    whole = [r.event.body for r in event_store.read_room(room, end=at(100), page_size=3)]
    assert whole == [f"live {t}" for t in range(4)] + ["backfilled"] + [f"live {t}" for t in range(4, 10)]
    assert [r.event.body for r in event_store.read_room(room, start=at(9.6))] == []


def test_ranged_read_pages_need_no_sort(event_store):
    """The plan of a page: an index walk in order (a sort would cost the whole remaining range per page)."""
    plan = event_store._recorder.explain_room_range("w@c", (0, 0), 100, 0.0, 10.0**10)
    # PostgreSQL's Merge Append of the two walks names the order it keeps ("Sort Key") and sorts nothing.
    sorts = plan.upper().replace("SORT KEY", "")
    assert ("USING PRIMARY KEY" in plan or "archive_event_order" in plan) and "SORT" not in sorts, plan
    # The walk starts where the last page stopped: the lower bound is an index condition, not a filter.
    starts_there = "(second,originator_version)>(?,?)" in plan or "ROW(high, originator_version) >" in plan
    assert starts_there, plan


def _page_size(path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA page_size").fetchone()[0]


def test_a_new_sqlite_store_has_large_pages_and_an_older_store_keeps_its_own(tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/new.sqlite") as store:
        store.append([message(0)])
    assert _page_size(tmp_path / "new.sqlite") == PAGE_SIZE != 4096
    older = tmp_path / "older.sqlite"
    with closing(sqlite3.connect(older)) as conn:  # made as stores were before: SQLite's default pages, WAL
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    with open_event_store(f"sqlite:///{older}") as store:
        store.append([message(t) for t in range(3)])
        assert len(list(store.read_log())) == 3
    assert _page_size(older) == 4096


def test_a_sqlite_store_that_cannot_be_created_is_a_store_error(tmp_path):
    (tmp_path / "store.sqlite").symlink_to(tmp_path / "no-such-directory" / "store.sqlite")  # as root too
    with pytest.raises(StoreError, match="unable to open database file"):
        open_event_store(f"sqlite:///{tmp_path}/store.sqlite")


def test_a_batchs_rows_are_made_once_unless_kept():
    def rows(batch):
        return BatchRows(batch, {"a@conference.localhost": [0, None, 1]}, None,
                         encode_states=to_msgpack_list, blob=b"", chained=True)

    batch = slotted([message(t, room="a@conference.localhost") for t in range(3)])
    once = rows(batch)
    assert [version for chunk in once.at(range(1, 4), {"a@conference.localhost": 0}) for _, _, version, *_ in chunk] \
        == [1, 2, 3]
    with pytest.raises(RuntimeError, match="made once"):  # it would go on at version 4, indexed twice
        list(once)
    kept = rows(batch)
    assert kept.log_columns() is kept.log_columns() and kept.log_columns()[1] == [1, 2, 3]
    assert kept.index_columns()[2] == [1, 2, 3]
    with pytest.raises(RuntimeError, match="made once"):
        list(kept)


def test_a_batchs_rows_made_at_positions_carry_them_across_chunks_and_are_set_before_made():
    batch = slotted([message(t, room="a@conference.localhost") for t in range(ROW_CHUNK + 2)])
    rows = BatchRows(batch, {"a@conference.localhost": [0, None, 1]}, None,
                     encode_states=to_msgpack_list, blob=b"", chained=True)
    # The room's highest second so far, 10 s into the batch's: each row's high is that until the batch passes it.
    stored_high = int(batch.times[0]) + 10
    made = [row for chunk in rows.at(range(100, 100 + ROW_CHUNK + 2), {"a@conference.localhost": stored_high})
            for row in chunk]
    assert [row[:3] for row in made] == [(100 + i, "a@conference.localhost", 1 + i) for i in range(ROW_CHUNK + 2)]
    assert [row[-1] for row in made] == [max(stored_high, int(t)) for t in batch.times]
    with pytest.raises(RuntimeError, match="set before"):
        rows.at(range(3), {})


def test_copies_keep_their_positions_and_later_appends_go_on_after_them(event_store):
    copies = [(1, Recorded(4, message(1, room="a@conference.localhost"))),
              (1, Recorded(9, message(2, room="b@conference.localhost")))]
    assert [r.position for r in event_store.append_copies(copies, NO_CHAINS)] == [4, 9]
    assert [r.position for r in event_store.append([message(3, stanza_id="later")])] == [10]
    assert [r.position for r in event_store.read_log()] == [4, 9, 10]
    # A position the log has passed is refused, not renumbered: copies go into an empty store.
    with pytest.raises(StoreError, match="position 7 is taken or out of order"):
        event_store.append_copies([(1, Recorded(7, message(4, room="c@conference.localhost")))], NO_CHAINS)
    with pytest.raises(StoreError, match="out of order"):
        event_store.append_copies([(1, Recorded(12, message(5, room="d@conference.localhost"))),
                                   (1, Recorded(11, message(6, room="e@conference.localhost")))], NO_CHAINS)
    assert [r.position for r in event_store.read_log()] == [4, 9, 10]
