"""The store's leases: expiry by the database's clock, a holder's note for the next holder, and the lapse a holder that
paused checks before it writes (both stores)."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest

import archive.lease
from archive.application import StoreLocation, open_event_store
from archive.errors import Fenced
from archive.lease import LeaseHeld, LeaseLost, StoreLease, last_note
from tests.factories import message
from tests.services.postgres import POSTGRES_DSN


@contextmanager
def host_clock_off_by(seconds: float):
    """The lease module on a host whose wall clock is ``seconds`` off the others' (its monotonic clock is its own)."""

    class Skewed:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def time() -> float:
            return time.time() + seconds

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(archive.lease, "time", Skewed)
        yield


def test_expiry_is_set_and_judged_by_the_databases_clock_not_the_holders(event_store):
    """A holder on a host an hour behind wrote a lease that every other host read as long expired: a second listener
    took over while the first ran. One on a host an hour ahead kept its lease an hour after it stopped renewing."""
    behind = StoreLease(event_store, "listener")
    with host_clock_off_by(-3600):
        behind.acquire()
    with pytest.raises(LeaseHeld, match=behind.holder):
        StoreLease(event_store, "listener").acquire()
    ahead = StoreLease(event_store, "views y", ttl=0.3)
    with host_clock_off_by(3600):
        ahead.acquire()
    time.sleep(0.5)
    StoreLease(event_store, "views y").acquire()  # taken over once its ttl has passed, by the database's clock


def test_a_note_is_written_by_the_holder_only_and_outlives_its_lease(event_store):
    """What the listener leaves for the next one, which may start on another host: written only while its writer holds
    the lease (one that lost it would overwrite its successor's), read after it released it."""
    first, second = StoreLease(event_store, "listener"), StoreLease(event_store, "listener")
    assert last_note(event_store, "listener") is None
    assert not first.write_note(b"before it holds the lease")
    first.acquire()
    assert first.write_note(b"rooms of the first")
    assert not second.write_note(b"not holding it")
    first.release()
    assert last_note(event_store, "listener") == (first.holder, b"rooms of the first"), "it outlives the release"
    second.acquire()
    assert last_note(event_store, "listener") == (first.holder, b"rooms of the first"), "the next holder reads it"
    assert not first.write_note(b"after its lease"), "a former holder does not overwrite its successor's"
    assert second.write_note(b"rooms of the second")
    assert last_note(event_store, "listener") == (second.holder, b"rooms of the second")
    assert last_note(event_store, "purge") is None, "a note is its lease's"


def test_a_lease_unrenewed_for_its_length_has_lapsed_for_its_holder(event_store):
    """A holder that paused (SIGSTOP, a VM frozen) does not know at once that another took over: it must not write
    until a renewal says the lease is still its own."""
    lease = StoreLease(event_store, "listener", ttl=0.3)
    assert lease.lapsed(), "not taken yet"
    lease.acquire()
    assert not lease.lapsed()
    time.sleep(0.4)
    assert lease.lapsed(), "a whole ttl unrenewed: another may hold it now"
    lease.renew()
    assert not lease.lapsed()


def test_a_holder_whose_lease_another_took_over_and_released_meanwhile_has_lost_it(event_store):
    """Paused past its lease, it runs again after another holder took the lease over and finished (released it):
    renewing must not make it the holder again as if nothing happened (a purge's rebuild would then swap in what
    the other deleted meanwhile)."""
    paused = StoreLease(event_store, "purge", ttl=-1)  # expired at once, as after a pause
    paused.acquire()
    other = StoreLease(event_store, "purge")
    other.acquire()
    other.release()
    with pytest.raises(LeaseLost, match="released it since"):
        paused.renew()
    assert paused.lost.is_set() and not paused.held


def drop_notes(store_url: str) -> None:
    """The store as an earlier version made it: its leases table (made by the first lease), no notes."""
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            conn.execute("DROP TABLE archive_lease_notes")
        return
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{location.schema}".archive_lease_notes')
        conn.execute(f'DROP TABLE "{location.schema}".archive_schema')  # nor a record of its set-up


def test_a_store_made_before_the_notes_gets_them_when_opened(store_url):
    with open_event_store(store_url) as store:
        left = StoreLease(store, "listener", ttl=600)
        left.acquire()  # the earlier version's listener, running
    drop_notes(store_url)
    with open_event_store(store_url) as store:
        with pytest.raises(LeaseHeld):
            StoreLease(store, "listener").acquire()
        assert last_note(store, "listener") is None
        upgraded = StoreLease(store, "listener")
        upgraded.holder = left.holder  # the same holder, on the store as opened again
        assert upgraded.write_note(b"kept by the next version")
        assert last_note(store, "listener") == (left.holder, b"kept by the next version")


def stored_ids(store) -> list[str]:
    return [r.event.stanza_id for r in store.read_room("lobby@conference.localhost")]


def test_an_append_under_a_lease_is_refused_in_its_transaction_unless_the_lease_is_its_holders(event_store):
    """The listener's writer appends under its lease (``StoreLease.fence``): the store checks the lease row, by the
    database's clock, in the append's own transaction. A check before the append (the holder's own clock) leaves the
    moment between them, where a pause lets the append commit after another listener took over."""
    first = StoreLease(event_store, "listener", ttl=0.5)
    first.acquire()
    event_store.append([message(0, stanza_id="held")], fence=first.fence)
    time.sleep(0.6)
    with pytest.raises(Fenced, match="expired"):  # nobody took it over yet: expired by the database's clock is enough
        event_store.append([message(1, stanza_id="expired")], fence=first.fence)
    second = StoreLease(event_store, "listener")
    second.acquire()
    with pytest.raises(Fenced, match=second.holder):
        event_store.append([message(2, stanza_id="taken over")], fence=first.fence)
    second.release()
    with pytest.raises(Fenced, match="nobody holds"):
        event_store.append([message(3, stanza_id="released")], fence=first.fence)
    event_store.append([message(4, stanza_id="unfenced")])  # what holds no lease (an import) is not fenced
    assert stored_ids(event_store) == ["held", "unfenced"]


def test_a_lease_taken_over_while_an_append_under_it_runs_stops_that_append_from_committing(postgres_url):
    """The lease row changes between a check and the commit: the append sleeps in its transaction (a trigger, as a
    holder paused there: SIGSTOP, a VM frozen), and another holder takes the lease over meanwhile. The append must
    not commit after that (the other listener records the same presence); it did when the check came first."""
    schema = postgres_url.split("schema=")[1]
    with open_event_store(postgres_url) as store:
        store.append([message(0, stanza_id="before")])
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE FUNCTION "{schema}".pause() RETURNS trigger LANGUAGE plpgsql AS '
                         "$$ BEGIN PERFORM pg_sleep(1.5); RETURN NEW; END $$")
            conn.execute(f'CREATE TRIGGER pause BEFORE INSERT ON "{schema}".archive_store_events '
                         f'FOR EACH ROW EXECUTE FUNCTION "{schema}".pause()')
        paused = StoreLease(store, "listener", ttl=0.5)
        paused.acquire()
        outcome: list = []

        def append() -> None:
            try:
                outcome.append(store.append([message(1, stanza_id="paused")], fence=paused.fence))
            except Fenced as e:
                outcome.append(e)

        appending = threading.Thread(target=append)
        appending.start()
        time.sleep(0.8)  # in the trigger's sleep, past the lease
        with open_event_store(postgres_url) as elsewhere:
            StoreLease(elsewhere, "listener").acquire()  # another listener takes over
            appending.join(10)
            assert isinstance(outcome[0], Fenced), outcome
            assert stored_ids(elsewhere) == ["before"], "nothing committed after the takeover"


def test_a_holder_told_its_lease_was_taken_over_guards_nothing_more_though_its_ttl_has_not_passed(event_store):
    """After ``LeaseLost`` the listener stops, and its stop writes what its writer holds: not while another holds the
    lease, though it renewed less than a ttl ago (the row deleted by hand, or its clock not counting a suspend)."""
    first = StoreLease(event_store, "listener", ttl=600)
    first.acquire()
    assert first.refusal() is None
    remove_lease_rows(event_store)
    StoreLease(event_store, "listener").acquire()
    with pytest.raises(LeaseLost):
        first.renew()
    assert not first.lapsed(), "renewed a moment ago by its own clock"
    assert "taken over" in first.refusal()


def remove_lease_rows(store) -> None:
    """An operator's forced takeover: the leases' rows deleted."""
    datastore = store._recorder.datastore
    prefix = f'"{datastore.schema}".' if hasattr(datastore, "schema") else ""
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(f"DELETE FROM {prefix}archive_leases")
