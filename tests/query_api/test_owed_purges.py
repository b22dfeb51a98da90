"""A purge whose work was cut short (its deletions or its rebuild) is owed: finished by the next purge, by `rebuild
all`, and by `up` with no retention period set, before it is recorded applied; on both stores."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from archive.integrity import verify_integrity
from archive.settings import RetentionSettings
from chat_archive.purges import purge_expired

from .conftest import SECRET
from .purge_setup import found, setup  # noqa: F401 (setup: a fixture)


def purge_stopped_before_its_rebuild(config, store, monkeypatch) -> None:
    """A purge that deleted, then ended (Ctrl-C, the process's end) before it rebuilt the views and the index."""
    from chat_archive import purges

    with monkeypatch.context() as patch:
        patch.setattr(purges, "rebuild_projections", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            purge_expired(config, store, by="test")


def test_a_purge_whose_rebuild_did_not_finish_is_finished_by_the_next_one(setup, monkeypatch, capsys):
    """The deletion is done before the rebuild: a rebuild that failed (or a process killed during it) left the
    views and the index showing what the store no longer holds. The next purge finds nothing more to delete and
    still rebuilds them, from the purge record no `purge_applied` record covers; so does a dry run say so."""
    import getpass

    from archive.events import PurgeApplied
    from archive.integrity import compliance_records
    from chat_archive import purges
    from chat_archive.cli import main

    config, store, client, compliance, search = setup

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as a Ctrl-C, or the process's end, in the middle of the rebuild

    with monkeypatch.context() as patch:
        patch.setattr(purges, "rebuild_projections", interrupted)
        with pytest.raises(KeyboardInterrupt):
            purge_expired(config, store, by="test")
    shown = found(client, compliance, SECRET)  # (each call holds streams open: at most four per client)
    assert shown["transcript"] and shown["events"] == 0
    assert not list(compliance_records(store, PurgeApplied))

    config_file = Path(config.index.path).parent / "c.toml"
    config_file.write_text(f'[store]\nurl = "{config.store.url}"\n[index]\npath = "{config.index.path}"\n')
    assert main(["--config", str(config_file), "purge", "--dry-run"]) == 0  # no retention period set
    assert "a purge would rebuild the views and the search index (its deletions are done)" in capsys.readouterr().out
    assert client.get(f"/api/v1/rooms/{SECRET}/transcript?from=2024-01-01", headers=compliance).json["lines"]

    assert main(["--config", str(config_file), "purge"]) == 0
    assert "rebuilt the views and the search index" in capsys.readouterr().out
    time.sleep(search.reload_interval)
    assert found(client, compliance, SECRET) == {"search": [], "transcript": [], "events": 0, "export": 0, "log": 0}
    assert [applied.by for applied in compliance_records(store, PurgeApplied)] == [f"{getpass.getuser()} (command line)"]
    assert main(["--config", str(config_file), "purge"]) == 0  # applied: nothing rebuilt again
    assert capsys.readouterr().out.startswith("nothing to purge")


def test_rebuild_all_from_the_command_line_applies_an_owed_purge(setup, monkeypatch, capsys):
    """An interrupted purge's rebuild, done by hand with `rebuild all`: recorded applied (else `purge --dry-run` and
    the next `up` still say it is owed) and the index generation it replaced, holding what was purged, dropped."""
    import argparse

    from archive.retention import pending_purge
    from chat_archive.commands.projections import run_rebuild
    from projections.search import IndexLocation

    config, store, client, compliance, search = setup
    purge_stopped_before_its_rebuild(config, store, monkeypatch)
    assert pending_purge(store) is not None
    assert run_rebuild(argparse.Namespace(what="all", quiet=True), config) == 0
    assert pending_purge(store) is None
    assert "earlier purge's rebuild did not finish" in capsys.readouterr().err
    location = IndexLocation(config.index.path)
    assert [p.name for p in location.base.glob("gen-*")] == [location.current().name]
    time.sleep(search.reload_interval)
    assert found(client, compliance, SECRET)["search"] == []
    assert found(client, compliance, SECRET)["transcript"] == []


@pytest.mark.parametrize("finish", ["rebuild all", "up with no retention period", "the next purge"])
def test_a_purge_stopped_among_its_deletions_is_finished_before_it_is_recorded_applied(setup, monkeypatch, capsys, finish):
    """Its record is written before its deletions: what it names must be deleted before its rebuild is recorded,
    by a rebuild by hand and by `up` with no retention period too (which finds nothing expired itself); by the
    next purge before it looks for what expired (else it names part of it again around a hold placed since, and
    the chain walk, finding that part's spans, reports the held part deleted)."""
    import argparse

    import msgspec

    from archive.retention import owed_deletions, pending_purge, place_hold
    from chat_archive.cli import main
    from chat_archive.commands.projections import run_rebuild

    config, store, client, compliance, search = setup
    with monkeypatch.context() as patch:
        patch.setattr(store, "delete_events", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            purge_expired(config, store, by="test")
    owed = owed_deletions(store)
    assert owed >= len(list(store.read_room(SECRET))) > 0
    config_file = Path(config.index.path).parent / "c.toml"
    config_file.write_text(f'[store]\nurl = "{config.store.url}"\n[index]\npath = "{config.index.path}"\n')
    assert main(["--config", str(config_file), "purge", "--dry-run"]) == 0
    assert f"a purge would first delete the {owed} events its record names that are still stored" in capsys.readouterr().out
    place_hold(store, case="HR-12", jids=["bob@localhost"], by="test")  # after the record: keeps none of it
    if finish == "rebuild all":
        assert run_rebuild(argparse.Namespace(what="all", quiet=True), config) == 0
    elif finish == "the next purge":
        purge_expired(config, store, by="test")
    else:
        purge_expired(msgspec.structs.replace(config, retention=RetentionSettings()), store, by="test")
    assert pending_purge(store) is None
    assert not list(store.read_room(SECRET))
    time.sleep(search.reload_interval)
    assert found(client, compliance, SECRET)["transcript"] == [] and found(client, compliance, SECRET)["search"] == []
    report = verify_integrity(store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]


def test_up_finishes_an_owed_rebuild_once_with_no_retention_period_set(setup, monkeypatch):
    import threading

    import msgspec

    from chat_archive import purges

    config, store, client, compliance, search = setup
    purge_stopped_before_its_rebuild(config, store, monkeypatch)
    unset = msgspec.structs.replace(config, retention=RetentionSettings())
    stop = threading.Event()
    scheduled = purges.start_purges(unset, store, stop)
    assert scheduled is not None
    deadline = time.monotonic() + 60
    while purges.pending_purge(store) is not None:
        assert scheduled.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(search.reload_interval)
    assert found(client, compliance, SECRET)["transcript"] == []
    assert scheduled.is_alive()  # waiting for the stop, not purging again: no retention period
    stop.set()
    scheduled.join()
    assert purges.start_purges(unset, store, threading.Event()) is None


def test_up_retries_an_owed_rebuild_whose_turn_another_purge_held(setup, monkeypatch):
    """With no retention period set, a skipped turn (the lease held by another purge) used to wait for the next
    start of `up`: the views kept showing what the interrupted purge deleted until then."""
    import threading

    import msgspec

    from chat_archive import purges

    config, store, client, compliance, search = setup
    purge_stopped_before_its_rebuild(config, store, monkeypatch)
    unset = msgspec.structs.replace(config, retention=RetentionSettings(purge_interval=0.2))
    stop = threading.Event()
    with purges.purge_lease(store):
        scheduled = purges.start_purges(unset, store, stop)
        time.sleep(0.5)  # its turns are skipped meanwhile
        assert purges.pending_purge(store) is not None
    deadline = time.monotonic() + 60
    while purges.pending_purge(store) is not None:
        assert scheduled.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    stop.set()
    scheduled.join()


def test_a_scheduled_purge_whose_lease_was_held_is_tried_again_soon_not_an_interval_later(setup):
    """`up` rebuilds an outdated view at start under the purge lease, while its scheduled purge takes its first
    turn: a turn skipped for a held lease waited for the next interval (a day by default), the expired events
    kept meanwhile."""
    import threading

    from archive.events import EventsPurged
    from archive.integrity import compliance_records
    from chat_archive import purges

    config, store, client, compliance, search = setup
    assert config.retention.purge_interval == 86400
    stop = threading.Event()
    with purges.purge_lease(store):  # another purge, or a rebuild of the views
        scheduled = purges.start_purges(config, store, stop)
        time.sleep(0.5)
        assert not list(compliance_records(store, EventsPurged)), "its turn waits for the lease"
    deadline = time.monotonic() + 60
    while not list(compliance_records(store, EventsPurged)):
        assert scheduled.is_alive() and time.monotonic() < deadline, "purged once the lease is free"
        time.sleep(0.1)
    stop.set()
    scheduled.join()
