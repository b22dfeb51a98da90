"""Retention and legal holds on both stores: what a hold keeps survives, a release lets the next purge
delete it, and the hash chains still verify across every cut."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive import events as ev
from archive.errors import InvalidQueryError, NotFoundError
from archive.events import COMPLIANCE_STREAM, EventsPurged
from archive.integrity import compliance_records, verify_integrity, write_checkpoint
from archive.retention import (
    finish_purges, held, holds_of, owed_deletions, pending_purge, place_hold, purge, record_purge_applied, release_hold,
    retention_days,
    unapplied_purge,
    unapplied_purges,
)
from archive.settings import RetentionSettings
from projections.message_groups import message_groups
from tests.factories import T0, at, make, message

LOBBY, DEV = "lobby@conference.localhost", "dev@conference.localhost"
NOW = T0 + timedelta(days=10)
ONE_DAY = RetentionSettings(default_days=1)


def fill(store):
    store.append([
        message(0, "from alice", "alice", room=LOBBY, jid="alice@localhost/pc"),
        message(1, "from bob", "bob", room=LOBBY, jid="bob@localhost/x"),
        message(2, "anonymous", "carol", room=LOBBY),
        make(ev.OccupantJoined, 3, room=DEV, nick="bob", jid="bob@localhost/x"),
        message(4, "dev talk", "bob", room=DEV, jid="bob@localhost/x"),
        message(9 * 86400, "recent", "bob", room=LOBBY, jid="bob@localhost/x"),  # a day before NOW: kept
    ])  # fmt: skip


def bodies(store, room):
    return [getattr(r.event, "body", type(r.event).__name__) for r in store.read_room(room)]


def test_retention_per_room_then_glob_then_default():
    settings = RetentionSettings(default_days=30, rooms={LOBBY: 0, "*@conference.localhost": 7})
    assert retention_days(LOBBY, settings) == 0
    assert retention_days(DEV, settings) == 7
    assert retention_days("x@elsewhere", settings) == 30


def test_holds_cover_rooms_people_and_time_and_keep_what_they_cannot_rule_out():
    hold = ev.LegalHoldPlaced(room=COMPLIANCE_STREAM, occurred_at=T0, recorded_at=T0, hold_id="h", case="c",
                              rooms=(LOBBY,), jids=("alice@localhost",), hold_from=at(0), hold_to=at(10))
    assert held(message(1, room=LOBBY, jid="alice@localhost/pc"), [hold])
    assert not held(message(1, room=LOBBY, jid="bob@localhost/x"), [hold])
    assert held(message(1, room=LOBBY), [hold])  # whose it is is unknown: kept
    assert not held(message(11, room=LOBBY, jid="alice@localhost/pc"), [hold])
    assert not held(message(1, room=DEV, jid="alice@localhost/pc"), [hold])
    retraction = make(ev.MessageRetracted, 2, room=LOBBY, target_id="x", moderated=True, by_jid="alice@localhost/pc")
    assert held(retraction, [hold])


def test_a_hold_names_its_rooms_in_any_case_as_retention_does():
    """JIDs are case-insensitive, and retention reads room names so; a hold on "Lobby@Conference.localhost" (or
    "*@Conference.localhost") covered nothing, and the next purge deleted what it was placed to keep."""
    for rooms in (("Lobby@Conference.localhost",), ("*@CONFERENCE.localhost",), ("LOB*@conference.localhost",)):
        hold = ev.LegalHoldPlaced(room=COMPLIANCE_STREAM, occurred_at=T0, recorded_at=T0, hold_id="h", case="c",
                                  rooms=rooms)
        assert held(message(1, room=LOBBY), [hold]), rooms
        assert not held(message(1, room="elsewhere@x"), [hold]), rooms


def test_a_hold_blocks_the_purge_and_its_release_lets_the_next_one_delete(event_store):
    fill(event_store)
    hold = place_hold(event_store, case="Acme v. Widget", rooms=[LOBBY], by="test")
    record = purge(event_store, ONE_DAY, together=message_groups, now=NOW)
    assert record.events == 2 and {s.stream for s in record.spans} == {DEV}
    assert bodies(event_store, DEV) == []
    assert bodies(event_store, LOBBY) == ["from alice", "from bob", "anonymous", "recent"]
    assert verify_integrity(event_store).ok
    release_hold(event_store, hold.hold_id, by="test", reason="settled")
    assert holds_of(event_store) == []
    assert purge(event_store, ONE_DAY, together=message_groups, now=NOW).events == 3
    assert bodies(event_store, LOBBY) == ["recent"]
    assert [r.event.body for r in event_store.read_log() if isinstance(r.event, ev.MessagePosted)] == ["recent"]
    report = verify_integrity(event_store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]
    assert purge(event_store, ONE_DAY, together=message_groups, now=NOW) is None  # nothing left to expire
    assert len(list(compliance_records(event_store, EventsPurged))) == 2


def test_a_hold_on_a_person_keeps_only_their_events_and_the_chain_verifies_across_gaps(event_store):
    fill(event_store)
    write_checkpoint(event_store)
    place_hold(event_store, case="HR-12", jids=["alice@localhost"])
    purge(event_store, ONE_DAY, together=message_groups, now=NOW)
    assert bodies(event_store, LOBBY) == ["from alice", "anonymous", "recent"]
    # The stream goes on after a purge, versions and links included.
    event_store.append([message(9 * 86400 + 5, "later", "bob", room=DEV, jid="bob@localhost/x")])
    report = verify_integrity(event_store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]
    assert bodies(event_store, DEV) == ["later"]


def test_a_deletion_beyond_the_purge_record_is_still_found(event_store):
    from tests.archive.test_integrity import run_sql

    fill(event_store)
    purge(event_store, RetentionSettings(rooms={DEV: 1}), together=message_groups, now=NOW)
    url = event_store._url  # noqa: SLF001 - set by the fixture below
    run_sql(url, "DELETE FROM stored_events WHERE originator_id=? AND originator_version=2", (LOBBY,))
    (broken,) = [s.broken for s in verify_integrity(event_store).streams if s.broken]
    assert (broken.stream, broken.version) == (LOBBY, 2)


def test_hold_arguments_are_checked(event_store):
    with pytest.raises(InvalidQueryError):
        place_hold(event_store, case=" ")
    with pytest.raises(InvalidQueryError):
        place_hold(event_store, case="x", start=at(10), end=at(5))
    with pytest.raises(NotFoundError):
        release_hold(event_store, "nope")


def test_a_hold_on_a_bare_room_name_or_a_nick_is_refused_not_placed_covering_nothing(event_store):
    """`hold place --room lobby` (a bare name, as search's --room takes it) or `--jid alice` (a nick) was placed,
    covered nothing, and the next purge deleted what it was placed to keep."""
    fill(event_store)
    for names in ({"rooms": ["lobby"]}, {"rooms": [f"{LOBBY}/alice"]}, {"jids": ["alice"]}, {"jids": ["bob "]}):
        with pytest.raises(InvalidQueryError, match="by JID"):
            place_hold(event_store, case="Acme", **names)
    assert holds_of(event_store) == []
    place_hold(event_store, case="Acme", rooms=["lobby@*"], jids=["Bob@localhost/x"])
    purge(event_store, ONE_DAY, together=message_groups, now=NOW)
    assert bodies(event_store, LOBBY) == ["from bob", "anonymous", "recent"]


@pytest.fixture
def event_store(store_url):
    from archive.application import open_event_store

    store = open_event_store(store_url)
    store._url = store_url  # noqa: SLF001 - for the test that edits rows behind the store's back
    yield store
    store.close()


def test_purged_events_are_gone_from_the_sqlite_files_themselves_while_the_store_is_open(tmp_path):
    from archive.application import open_event_store

    path = tmp_path / "events.sqlite"
    with open_event_store(f"sqlite:///{path}") as store:
        store.append([message(t, f"needle-{t}-in-the-haystack", room=DEV) for t in range(50)])
        purge(store, ONE_DAY, together=message_groups, now=NOW)
        store.erase_deleted_copies()  # what a purge's caller does once the views are rebuilt too
        files = list(tmp_path.iterdir())  # the database, and its write-ahead log while it is open
        assert path in files and not [f for f in files if b"needle-" in f.read_bytes()]


def test_a_purge_is_unapplied_until_a_later_record_covers_it_or_a_newer_one():
    def purged(position):
        return ev.Recorded(position, EventsPurged(room=COMPLIANCE_STREAM, occurred_at=T0, recorded_at=T0, cutoff_policy=""))

    def applied(position, purge_position):
        return ev.Recorded(position, ev.PurgeApplied(room=COMPLIANCE_STREAM, occurred_at=T0, recorded_at=T0,
                                                     purge_position=purge_position))

    assert unapplied_purge([]) is None
    assert unapplied_purge([purged(3)]) == 3
    assert unapplied_purge([purged(3), applied(4, 3)]) is None
    assert unapplied_purge([purged(3), purged(5), applied(6, 3)]) == 5  # the newer one's rebuild never finished
    assert unapplied_purge([purged(3), purged(5), applied(6, 5)]) is None  # one rebuild covers both
    assert [r.position for r in unapplied_purges([purged(3), applied(4, 3), purged(5), purged(7)])] == [5, 7]


def test_an_interrupted_purge_is_finished_as_recorded_before_the_next_one_runs(event_store, monkeypatch):
    """A purge's record is written before its deletions: finishing it deletes what it names and is still stored,
    a hold placed after the record included (the record is the decision; kept events would sit unverified inside
    its span), before the next purge, which then names none of it again; the chain verifies across the cuts."""
    fill(event_store)
    with monkeypatch.context() as patch:
        patch.setattr(event_store, "delete_events", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            purge(event_store, ONE_DAY, together=message_groups, now=NOW)
    assert owed_deletions(event_store) == 5
    place_hold(event_store, case="HR-12", jids=["bob@localhost"], by="test")
    finish_purges(event_store)
    assert owed_deletions(event_store) == 0
    assert bodies(event_store, LOBBY) == ["recent"] and bodies(event_store, DEV) == []
    assert purge(event_store, ONE_DAY, together=message_groups, now=NOW) is None  # nothing left to name twice
    report = verify_integrity(event_store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]
    record_purge_applied(event_store, pending_purge(event_store), by="test")
    # "recent" expires, bob's hold keeps it
    later = purge(event_store, ONE_DAY, together=message_groups, now=NOW + timedelta(days=2))
    assert later is None and bodies(event_store, LOBBY) == ["recent"]
    assert verify_integrity(event_store).ok


def test_the_store_owes_a_rebuild_from_the_purge_until_it_is_recorded_applied(event_store):
    fill(event_store)
    assert pending_purge(event_store) is None
    purge(event_store, ONE_DAY, together=message_groups, now=NOW)
    owed = pending_purge(event_store)
    assert owed is not None
    record_purge_applied(event_store, owed, by="test")
    assert pending_purge(event_store) is None
    assert verify_integrity(event_store).ok


def test_vacuum_after_a_purge_keeps_every_position(tmp_path):
    """The SQLite log's rowid is the log position (eventsourcing's table declares no INTEGER PRIMARY KEY), and
    SQLite's documentation says VACUUM *may* renumber such rowids; the README points at (auto)vacuum to reclaim
    a purge's space. Every position the views, the side index and the chains hold must survive it, gaps too."""
    import sqlite3

    from archive.application import open_event_store

    path = tmp_path / "events.sqlite"
    with open_event_store(f"sqlite:///{path}") as store:
        store.append([message(t, f"old-{t}", room=DEV if t % 2 else LOBBY) for t in range(40)])
        store.append([message(9 * 86400 + t, f"new-{t}", room=DEV) for t in range(10)])
        # a gap at every other early position
        purge(store, RetentionSettings(rooms={LOBBY: 1}), together=message_groups, now=NOW)
        before = [(r.position, r.event) for r in store.read_log()]
    with sqlite3.connect(path) as raw:
        raw.execute("VACUUM")
    with open_event_store(f"sqlite:///{path}") as store:
        assert [(r.position, r.event) for r in store.read_log()] == before
        assert [r.position for r in store.read_room(DEV)] == [p for p, e in before if e.room == DEV]
        assert verify_integrity(store).ok
