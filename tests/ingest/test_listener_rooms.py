"""Which rooms the listener joins, against a real Prosody: rooms made after it started, hidden rooms
(named, or found through the admin interface when opted in), rooms that refuse entry or do not exist,
and a nick already taken."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from archive import events as ev
from archive.application import open_event_store
from archive.times import utcnow
from ingest.status import read_status
from tests.ingest.helpers import running_listener, wait_discovery_polls, wait_for_event, wait_joined, watch_sent
from tests.services.prosody import unique_room, wait_for


@pytest.fixture
def store(tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        yield store


def test_a_room_created_after_the_listener_started_is_archived(prosody, people, store):
    alice = people["alice"]
    prefix = unique_room(prosody, "later").partition("@")[0]
    with running_listener(prosody, store, include=(f"{prefix}*",)) as listener:
        wait_for(lambda: listener.listener.status.connected, message="the listener to connect")
        room = f"{prefix}-new@{prosody.muc_service}"
        alice.create_room(room, "alice")
        alice.say(room, "anyone here?")
        wait_joined(listener, room)
        summary = wait_for_event(store, room, ("message", "alice", "anyone here?"), ("joined", "alice"))
    assert summary == [("discovered",), ("message", "alice", "anyone here?"), ("joined", "alice")] or summary == [
        ("discovered",), ("joined", "alice"), ("message", "alice", "anyone here?")
    ]
    assert summary.count(("message", "alice", "anyone here?")) == 1


def test_hidden_rooms_are_joined_only_when_named_and_exclude_wins(prosody, people, store):
    alice = people["alice"]
    hidden = unique_room(prosody, "hidden")
    unnamed_hidden = unique_room(prosody, "hidden")
    excluded = unique_room(prosody, "excluded")
    for room in (hidden, unnamed_hidden):
        alice.create_room(room, "alice", **{"muc#roomconfig_publicroom": "0"})
    alice.create_room(excluded, "alice")
    with running_listener(
        prosody, store, include=("hidden-*", "excluded-*"), exclude=(excluded,), rooms=(hidden,), admin_discovery=False
    ) as listener:
        wait_joined(listener, hidden)
        wait_discovery_polls(listener, 3)
        assert listener.joined_rooms() == [hidden]
    assert store.rooms() == [hidden]


def test_hidden_rooms_are_found_through_the_admin_interface_only_when_opted_in(prosody, people, store):
    alice = people["alice"]
    hidden = unique_room(prosody, "adminfound")
    alice.create_room(hidden, "alice", **{"muc#roomconfig_publicroom": "0"})
    alice.say(hidden, "said in a hidden room")
    with running_listener(prosody, store, include=("adminfound-*",)) as listener:  # an admin, but not opted in
        wait_discovery_polls(listener, 3)
        assert listener.joined_rooms() == []
    # bob is no server admin: Prosody refuses him the room list, so the room stays unknown.
    with running_listener(
        prosody, store, jid=f"bob@{prosody.domain}", nick="bobarchive", include=("adminfound-*",), admin_discovery=True
    ) as bob:
        wait_discovery_polls(bob, 3)
        assert bob.joined_rooms() == []
    with running_listener(prosody, store, include=("adminfound-*",), admin_discovery=True) as listener:
        commands = _watch_commands(listener)
        wait_joined(listener, hidden)
        wait_for(lambda: len(commands) >= 6, message="several polls of the admin command")
        alice.say(hidden, "the room is still there")  # reading the form destroyed nothing
        wait_for(lambda: _bodies(store, hidden) == ["said in a hidden room", "the room is still there"])
    # The destructive command is started and cancelled, never completed nor submitted a form.
    assert {action for action, _, _ in commands} == {"execute", "cancel"}
    assert not any(submitted for _, _, submitted in commands)
    sessions = [session for action, session, _ in commands if action == "cancel"]
    assert len(sessions) == len(set(sessions)) >= 2


def _members_only_room_with_history(prosody, alice) -> tuple[str, list[str]]:
    """A members-only room of alice's with 50 messages in its archive, the last a second old or more."""
    room = unique_room(prosody, "members")
    alice.create_room(room, "alice", **{"muc#roomconfig_membersonly": "1"})
    before = [f"said before the listener came {i}" for i in range(50)]
    for body in before:
        alice.say(room, body)
    time.sleep(1.1)  # the room's archive stamps to the second: the first attempt comes after every one of them
    return room, before


def test_a_room_that_refuses_entry_is_reported_once_and_retried_only_later(
    prosody, people, store, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr("ingest.catchup.OVERLAP", timedelta(0))  # retried minutes later, not seconds: see below
    alice = people["alice"]
    room, before = _members_only_room_with_history(prosody, alice)
    caplog.set_level(logging.WARNING, logger="ingest.listener")
    status_file = tmp_path / "status.json"
    # dave is no server admin: a members-only room keeps him out.
    settings = {"jid": "dave@localhost", "include": (room,), "retry_refused_after": 3.0}
    with running_listener(prosody, store, status_file, **settings) as listener:
        wait_for(lambda: room in listener.listener.refused_rooms(), message="the refusal")
        wait_discovery_polls(listener, 3)  # still one report
        reports = [r for r in caplog.records if room in r.getMessage()]
        assert len(reports) == 1 and "registration-required" in reports[0].getMessage()
        refused = wait_for(
            lambda: read_status(status_file).rooms_refused.get(room), message="the refusal in the status file"
        )
        assert "registration-required" in refused
        alice.set_affiliation(room, "dave@localhost", "member")
        wait_joined(listener, room, timeout=10)
        wait_for(lambda: room in read_status(status_file).rooms_joined, message="the join in the status file")
        alice.say(room, "said once the listener was in")  # live traffic after the delayed first join
        wait_for(lambda: "said once the listener was in" in _bodies(store, room), message="the live message")
    assert read_status(status_file).rooms_refused == {}
    # The first join failed, so the retry is still the first import: the room's whole archive.
    assert _bodies(store, room) == [*before, "said once the listener was in"]
    assert not [r.event for r in store.read_room(room) if isinstance(r.event, ev.ArchiveGap)]


def test_a_first_import_refused_before_a_restart_imports_the_whole_archive_after_it(prosody, people, store, monkeypatch):
    # A catch-up re-reads a minute before its time bound; the retry comes minutes after the first attempt. Without
    # the overlap, messages said before the first attempt stand for those said more than a minute before it.
    monkeypatch.setattr("ingest.catchup.OVERLAP", timedelta(0))
    alice = people["alice"]
    room, before = _members_only_room_with_history(prosody, alice)
    settings = {"jid": "dave@localhost", "include": (room,), "retry_refused_after": 300.0}
    with running_listener(prosody, store, **settings) as listener:
        wait_for(lambda: room in listener.listener.refused_rooms(), message="the refusal")
    assert [type(r.event) for r in store.read_room(room)] == [ev.RoomDiscovered]  # discovered, never entered
    alice.set_affiliation(room, "dave@localhost", "member")
    alice.say(room, "said while no listener ran")
    with running_listener(prosody, store, **settings) as listener:
        wait_joined(listener, room)
        alice.say(room, "said after the restart")
        wait_for(lambda: "said after the restart" in _bodies(store, room), message="the live message")
    assert _bodies(store, room) == [*before, "said while no listener ran", "said after the restart"]
    kinds = [type(r.event) for r in store.read_room(room)]
    assert kinds.count(ev.FirstJoinCompleted) == 1 and ev.ArchiveGap not in kinds


def test_a_room_emptied_by_retention_is_caught_up_not_imported_again(prosody, people, event_store, tmp_path, monkeypatch):
    store = event_store
    monkeypatch.setattr("ingest.catchup.OVERLAP", timedelta(0))  # retention periods are days, not seconds
    alice = people["alice"]
    room = unique_room(prosody, "expired")
    alice.create_room(room, "alice")
    for i in range(3):
        alice.say(room, f"expired {i}")
    time.sleep(1.1)  # the room's archive stamps to the second: the old messages are older than the listener's stop
    status_file = tmp_path / "status.json"
    with running_listener(prosody, store, status_file, include=(room,)) as listener:
        wait_joined(listener, room)
        wait_for(lambda: len(_bodies(store, room)) == 3, message="the first import")
    # What a purge deletes (archive.retention.purge): every event of the room, all expired.
    store.delete_events(room, [v for v, _ in store.read_room_versions(room)], utcnow() + timedelta(days=1))
    assert list(store.read_room(room)) == []
    time.sleep(1.1)  # said in a later second than the stop (archive stamps are whole seconds)
    alice.say(room, "said while away")
    with running_listener(prosody, store, status_file, include=(room,)) as listener:
        wait_joined(listener, room)
        alice.say(room, "said after the restart")  # live traffic during the catch-up
        wait_for(lambda: "said after the restart" in _bodies(store, room), message="the live message")
    assert _bodies(store, room) == ["said while away", "said after the restart"]  # the purged stay purged
    events = [r.event for r in store.read_room(room)]
    assert not [e for e in events if e.capture == ev.Capture.IMPORT]
    gap = next(e for e in events if isinstance(e, ev.ArchiveGap))
    assert gap.verified and gap.recovered == 1, gap.explanation


def test_the_listener_takes_another_nick_when_its_own_is_taken(prosody, people, store):
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "nick")
    alice.create_room(room, "alice")
    bob.join(room, "archive")  # the listener's configured nick
    with running_listener(prosody, store, include=(room,)) as listener:
        wait_joined(listener, room)
        bob.say(room, "I am not the archive")
        summary = wait_for_event(store, room, ("message", "archive", "I am not the archive"))
        assert listener.listener.rooms.states[room].nick == "archive~2"
    assert sorted(summary[1:3]) == [("joined", "alice"), ("joined", "archive")]


def test_a_configured_room_that_does_not_exist_is_reported_and_not_created(prosody, people, store):
    room = unique_room(prosody, "ghost")
    with running_listener(prosody, store, rooms=(room,), include=()) as listener:
        wait_for(lambda: room in listener.listener.refused_rooms(), message="the report")
        assert listener.listener.refused_rooms()[room] == "the room does not exist"
    owner = people["alice"]
    owner.join(room, "alice")  # had the listener created it, alice would not be its new owner
    assert store.rooms() == []


def _watch_commands(handle) -> list[tuple[str, str | None, bool]]:
    """(action, session id, whether a form was submitted) of every ad-hoc command stanza the listener sends."""

    def command_of(xml):
        command = xml.find("{http://jabber.org/protocol/commands}command")
        if command is None:
            return None
        submitted = command.find("{jabber:x:data}x[@type='submit']") is not None
        return command.get("action") or "execute", command.get("sessionid"), submitted

    return watch_sent(handle, command_of)


def _bodies(store, room):
    return [r.event.body for r in store.read_room(room) if isinstance(r.event, ev.MessagePosted)]
