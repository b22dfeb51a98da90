"""The listener's small parts: room filters, room view fold, status file, batch writer."""

from __future__ import annotations

import threading
from datetime import timedelta

import msgspec
import psycopg

from archive import events as ev
from archive.application import open_event_store
from archive.errors import StoreError
from archive.times import utcnow
from ingest.client import UnnamableRooms, allowed
from ingest.roomview import RoomView
from ingest.settings import XmppSettings
from ingest.status import ListenerStatus, describe, latest_status, read_status, unwatched, write_status
from ingest.writer import BatchWriter
from tests.factories import T0, at, make, message
from tests.services.postgres import POSTGRES_DSN

ROOM = "lobby@conference.localhost"


def test_include_and_exclude_globs_exclude_wins_case_insensitive():
    settings = XmppSettings(include=("*@conference.example.org",), exclude=("secret-*",))
    assert allowed("Lobby@Conference.Example.org", settings)
    assert not allowed("secret-plans@conference.example.org", settings)
    assert not allowed("lobby@other.example.org", settings)


def test_room_view_folds_presence_subject_and_last_message():
    events = [
        make(ev.OccupantJoined, 0, nick="alice", role="moderator"),
        make(ev.OccupantJoined, 1, nick="bob"),
        make(ev.NickChanged, 2, old_nick="bob", new_nick="bobby"),
        make(ev.PresenceChanged, 3, nick="bobby", show="away"),
        make(ev.RoleChanged, 4, nick="bobby", role="moderator"),
        make(ev.SubjectChanged, 5, subject="hi"),
        message(7, stanza_id="s7"),
        message(6, stanza_id="s6", capture=ev.Capture.BACKFILL),  # older, applied later
        make(ev.OccupantLeft, 8, nick="alice", reason=ev.LeaveReason.KICKED),
    ]
    view = RoomView.from_events(ROOM, events)
    assert list(view.occupants) == ["bobby"]
    assert (view.occupants["bobby"].show, view.occupants["bobby"].role) == ("away", "moderator")
    assert view.subject == "hi"
    assert (view.last_stanza_id, view.last_message_at) == ("s7", at(7))
    assert view.last_event_at == at(8)
    view.apply(make(ev.RoomDestroyed, 9))
    assert view.destroyed and not view.occupants


def test_status_file_round_trip_and_description(tmp_path):
    path = tmp_path / "sub" / "status.json"
    assert read_status(path) is None
    assert "no status" in describe(None)[0]
    status = ListenerStatus(
        jid="archiver@localhost", pid=42, started_at=T0, updated_at=at(5), connected=True, connected_since=at(1),
        rooms_joined=[ROOM], rooms_refused={"vip@conference.localhost": "registration-required"},
        rooms_away={"vip@conference.localhost": at(2)},
    )
    write_status(path, status)
    assert read_status(path) == status
    text = "\n".join(describe(status))
    assert "connected" in text and ROOM in text and "vip@conference.localhost: registration-required" in text
    assert "room not watched since" in text


def test_a_status_file_of_an_older_version_says_its_joined_rooms_were_watched_until_stored_until(tmp_path):
    """Older files have no ``rooms_away``: their joined rooms still start the next gap at ``stored_until``."""
    path = tmp_path / "status.json"
    path.write_text(
        '{"jid":"archiver@localhost","pid":42,"started_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:09Z",'
        f'"stored_until":"2026-01-01T00:00:08Z","rooms_joined":["{ROOM}"]}}'
    )
    old = read_status(path)
    assert old.rooms_away == {} and unwatched(old) == {ROOM: old.stored_until}
    away = msgspec.structs.replace(old, rooms_joined=[], rooms_away={ROOM: at(3)})
    assert unwatched(away) == {ROOM: at(3)} and unwatched(None) == {}


def test_the_last_status_is_the_last_lease_holders_a_status_file_of_another_holder_is_ignored():
    """A listener taking over on another host: that host's file, if any, is a listener's that ran there before (weeks
    ago, its rooms away since then); the store's is the last holder's. A file of the same holder is read where newer
    (the store refused the stop's status), and a store no listener of this version wrote leaves the file."""
    def status(holder: str, updated: int, **fields) -> ListenerStatus:
        return ListenerStatus(jid="archiver@localhost", pid=1, holder=holder, started_at=T0, updated_at=at(updated),
                              **fields)

    weeks_ago = status("host-b pid 7 0ld", 0, rooms_away={ROOM: at(-3 * 7 * 86400)}, stopped=True)
    last = status("host-a pid 9 last", 60, rooms_joined=[ROOM], stored_until=at(59))
    assert latest_status(weeks_ago, last) == last, "a file of another holder"
    assert latest_status(None, last) == last, "no file on this host"
    at_stop = msgspec.structs.replace(last, updated_at=at(61), stopped=True)
    assert latest_status(at_stop, last) == at_stop and latest_status(last, at_stop) == at_stop, "the newer of one holder"
    earlier_version = status("", 0, rooms_joined=[ROOM], stored_until=at(0))
    assert latest_status(earlier_version, None) == earlier_version and latest_status(None, None) is None


class FlakyStore:
    """Fails the first append, then records every batch it is given."""

    def __init__(self):
        self.batches, self.failures = [], 1

    def append(self, events):
        if self.failures:
            self.failures -= 1
            raise StoreError("database is locked")
        self.batches.append(list(events))
        return list(events)


def test_batch_writer_retries_a_failed_append_and_batches_what_queued_meanwhile():
    store, written, errors = FlakyStore(), [], []
    writer = BatchWriter(store, on_written=lambda recorded, n: written.append(n), on_error=errors.append)
    for i in range(3):
        writer.put([message(i)])
    writer.start()
    assert writer.wait_idle(10)
    writer.put([message(10), message(11)])
    writer.stop()
    assert [len(b) for b in store.batches] == [3, 2]
    assert sum(written) == 5 and len(errors) == 1 and "locked" in errors[0]


def test_a_fenced_writer_appends_nothing_until_the_fence_lifts_and_gives_up_on_it_at_a_stop():
    """The listener's lease went a whole length unrenewed (the process paused): another listener may archive the
    store now, and both would store the same presence at their own receive times. Nothing is appended until a
    renewal lifts the fence; at a stop (the lease lost) what waits is given up, and ``stored_until`` stays before it."""
    store, fenced = FlakyStore(), ["the lease lapsed"]
    store.failures = 0
    writer = BatchWriter(store, fence=lambda: fenced[0])
    writer.start()
    writer.put([message(1)])
    assert not writer.wait_idle(0.5) and store.batches == []
    fenced[0] = None
    assert writer.wait_idle(10) and [len(b) for b in store.batches] == [1]
    fenced[0] = "the lease was taken over"
    writer.put([message(2)])
    writer.stop()
    assert [len(b) for b in store.batches] == [1] and writer.lost == 1
    assert writer.stored_until(utcnow()) <= message(2).recorded_at


def test_batch_writer_tells_until_when_everything_put_is_stored():
    store = FlakyStore()  # fails the first append
    writer = BatchWriter(store)
    later = utcnow() + timedelta(hours=1)
    assert writer.stored_until(later) == later, "nothing pending"
    writer.put([message(1)])
    drained = writer.stored_until(later)
    assert drained < later, "one event pending: only up to the last drain"
    writer.start()
    assert writer.wait_idle(10)
    assert writer.stored_until(later) == later
    writer.stop()


def test_batch_writer_stop_writes_everything_queued():
    store = FlakyStore()
    store.failures = 0
    writer = BatchWriter(store, max_batch=2)
    writer.start()
    for i in range(5):
        writer.put([message(i)])
    writer.stop()
    assert sum(len(b) for b in store.batches) == 5 and max(len(b) for b in store.batches) <= 2


def test_batch_writer_appends_all_that_is_queued_up_to_ten_thousand_in_one_transaction(event_store):
    written = []
    writer = BatchWriter(event_store, on_written=lambda recorded, n: written.append((len(recorded), n)))
    for start in range(0, 25_000, 500):  # a backlog, as after a reconnect's backfill
        writer.put([message(t, stanza_id=f"s{t}") for t in range(start, start + 500)])
    writer.start()
    assert writer.wait_idle(60)
    writer.stop()
    assert written == [(10_000, 10_000), (10_000, 10_000), (5_000, 5_000)]
    assert event_store.head() == 25_000


def test_the_rooms_skipped_for_names_no_room_can_have_are_kept_to_a_bounded_number(monkeypatch, caplog):
    """Every hostile name a service listed was kept for the listener's life: a service listing new ones without
    end grew the set without end. At most MAX are kept (each warned about once); the rest are skipped unsaid."""
    monkeypatch.setattr(UnnamableRooms, "MAX", 3)
    skipped = UnnamableRooms()
    caplog.set_level("WARNING")
    hostile = [f"a b{i}@conference.localhost" for i in range(10)]
    for _ in range(2):  # two polls listing the same names
        assert all(skipped.skips(room) for room in hostile)
    assert not skipped.skips(ROOM)
    assert len(skipped._known) == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4 and "without a warning" in warnings[-1]


def refusing_inserts(url: str, topic: str | None = None) -> None:
    """The store's server refuses every new event from now on (a trigger raising), as a full disk or a revoked
    grant would: a real failure of the real store, at once rather than after a lock's timeout. With ``topic``,
    only events of that type (and so the batches holding them): aimed at one moment of a scenario."""
    schema = url.split("schema=")[1]
    when = f"WHEN (NEW.topic = '{topic}') " if topic else ""
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS '
                     "$$ BEGIN RAISE EXCEPTION 'no space left on device'; END $$")
        conn.execute(f'CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".archive_store_events '
                     f'FOR EACH ROW {when}EXECUTE FUNCTION "{schema}".refuse()')


def accepting_inserts(url: str) -> None:
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP TRIGGER refuse ON "{url.split("schema=")[1]}".archive_store_events')


def test_events_given_up_at_shutdown_are_not_counted_as_stored(postgres_url):
    """A stop gives up on what a failing store will not take; ``stored_until`` (the next run's gap starts there,
    and the views' known moment ends there) must stay before the first event given up, not move to the stop."""
    with open_event_store(postgres_url) as store:
        store.append([message(0, stanza_id="stored")])
        refusing_inserts(postgres_url)
        writer = BatchWriter(store)
        writer.start()
        lost = [message(5, stanza_id="lost-1"), message(6, stanza_id="lost-2")]
        writer.put(lost)
        writer.stop()
        assert writer.lost == 2
        assert writer.stored_until(utcnow()) <= lost[0].recorded_at


def test_once_a_stop_gives_up_on_a_batch_it_gives_up_on_every_later_one(postgres_url):
    """The store refuses one batch (a trigger on one kind of event) and would take the next: stored after the hole,
    that one would move the room's last event, where the next start's gap begins, and its archive anchor past it.
    Failed before: the later batch was stored, the next start's gap began after the events given up."""
    with open_event_store(postgres_url) as store:
        store.append([message(0, stanza_id="stored")])
        refusing_inserts(postgres_url, topic="occupant_joined")
        failed = threading.Event()
        writer = BatchWriter(store, on_error=lambda _: failed.set())
        writer.start()
        refused = make(ev.OccupantJoined, 5, nick="bob")
        writer.put([refused])
        assert failed.wait(10), "the store refused the join's batch"
        writer.put([message(6, stanza_id="after-the-hole")])  # waits behind it: a batch of its own
        writer.stop()
        assert writer.lost == 2
        assert [r.event.stanza_id for r in store.read_room(ROOM)] == ["stored"]
        assert writer.stored_until(utcnow()) <= refused.recorded_at
