"""`chat-archive verify` against a real Prosody: exit 0 when complete, non-zero when a message was
deleted from the store behind the archive's back, and `--repair` restoring it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from archive import events as ev
from archive.application import open_event_store
from archive.times import utcnow
from chat_archive.config import load_config
from chat_archive.demo_guide import publish_server
from ingest.settings import XmppSettings
from ingest.verify import SETTLE
from tests.ingest.helpers import archived_stanza_ids, delete_behind_its_back, running_listener, wait_for_event, wait_joined, write_config
from tests.factories import message
from tests.services.prosody import unique_room, wait_for

CLI = str(Path(sys.executable).with_name("chat-archive"))


def verify(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "--config", str(config), "verify", *args], capture_output=True, text=True, timeout=60)


def test_verify_passes_on_a_complete_archive_fails_on_a_deleted_message_and_repair_restores_it(prosody, people, tmp_path):
    alice, bob = people["alice"], people["bob"]
    prefix = f"verify{uuid.uuid4().hex[:6]}"
    room = unique_room(prosody, prefix)
    plain = unique_room(prosody, prefix, service=prosody.plain_muc_service)
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    alice.create_room(plain, "alice")
    config, _, store_url = write_config(tmp_path, prosody, f"{prefix}-*")
    config.write_text(config.read_text().replace(f'muc_services = ["{prosody.muc_service}"]',
                                                 f'muc_services = ["{prosody.muc_service}", "{prosody.plain_muc_service}"]'))
    with open_event_store(store_url) as store:
        with running_listener(prosody, store, include=(f"{prefix}-*",)) as listener:
            wait_joined(listener, room)
            wait_joined(listener, plain)
            sent = [(alice if i % 2 else bob).say(room, f"m{i}") for i in range(6)]
            alice.say(plain, "no archive here")
            wait_for_event(store, room, ("message", "alice", "m5"))
            wait_for_event(store, plain, ("message", "alice", "no archive here"))
            assert listener.listener.wait_idle()
        # verify checks up to SETTLE ago (a running listener may still be storing what is newer)
        newest = max(r.event.occurred_at for r in store.read_room(room))
        wait_for(lambda: utcnow() - newest > SETTLE, message="the messages to settle")

        complete = verify(config)
        assert complete.returncode == 0, complete.stdout + complete.stderr
        assert f"{room}: server 6, archived 6, missing 0, recovered 0" in complete.stdout, complete.stdout
        assert f"{plain}: server 0" in complete.stdout and "the room keeps no archive (MAM)" in complete.stdout

        deleted = sent[2]["stanza_id"]
        delete_behind_its_back(tmp_path / "events.sqlite", room, deleted)
        broken = verify(config, "--room", room, "--since", "-1h", "--json")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        [report] = json.loads(broken.stdout)["rooms"]
        assert (report["server"], report["archived"], report["missing"], report["missing_ids"]) == (6, 5, 1, [deleted])
        assert json.loads(broken.stdout)["complete"] is False

        repaired = verify(config, "--room", room, "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert f"{room}: server 6, archived 6, missing 0, recovered 1" in repaired.stdout
        assert sorted(archived_stanza_ids(store, room)) == sorted(s["stanza_id"] for s in sent)
        [restored] = [r.event for r in store.read_room(room) if getattr(r.event, "stanza_id", None) == deleted]
        assert (restored.body, restored.capture) == ("m2", ev.Capture.BACKFILL)
        from archive.audit import read_audit

        assert [r.event.endpoint for r in read_audit(store)] == ["verify", "verify", "verify --repair"]


def test_verify_without_a_configured_server_says_so(tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/e.sqlite") as store:
        store.append([message(0, "hello")])
    result = subprocess.run([CLI, "verify"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "CHAT_ARCHIVE_STORE_URL": f"sqlite:///{tmp_path}/e.sqlite"})
    assert result.returncode == 2 and "[xmpp] jid is empty" in result.stderr


@pytest.mark.parametrize(("asked", "status", "complaint"), [
    (["--room", "nosuch"], 1, "no archived room 'nosuch'"),
    (["--since", "garbage"], 2, "garbage"),
])  # fmt: skip
def test_verify_refuses_what_it_was_asked_before_naming_the_server(tmp_path, asked, status, complaint):
    """Beside a running demo, `verify --room nosuch` first said "checking against the running demo's server ..."."""
    store_url = f"sqlite:///{tmp_path}/data/events.sqlite"
    with open_event_store(store_url) as store:
        store.append([message(0, "hello")])
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{store_url}"\n')
    demo = XmppSettings(jid="archiver@localhost", password="pw", host="127.0.0.1", port=1, tls=False)
    publish_server(load_config(config, environ={}), demo)  # by this process, which runs: a demo running
    result = subprocess.run([CLI, "--config", str(config), "verify", *asked], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == status and complaint in result.stderr, result.stderr
    assert "checking against" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_verify_names_a_room_as_it_is_archived(prosody, people, tmp_path):
    """--room was lowercased, a second rule for room names: a room archived as Verify…@ (an older import's case)
    was checked as verify…@, which holds nothing, so every message of it counted as missing (and --repair would
    have copied them into a room of their own). Now archive.room_names.RoomNames names it, as everywhere else."""
    alice = people["alice"]
    prefix = f"verify{uuid.uuid4().hex[:6]}"
    room = unique_room(prosody, prefix)
    alice.create_room(room, "alice")
    said = utcnow()
    sent = [alice.say(room, f"m{i}") for i in range(2)]
    archived_as = room[0].upper() + room[1:]
    config, _, store_url = write_config(tmp_path, prosody, f"{prefix}-*")
    with open_event_store(store_url) as store:
        store.append([message(0, f"m{i}", "alice", room=archived_as, stanza_id=s["stanza_id"], occurred_at=said)
                      for i, s in enumerate(sent)])
    time.sleep(SETTLE.total_seconds())
    for named in (room, archived_as, room.upper()):
        checked = verify(config, "--room", named)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # The archived room is checked (Prosody's MAM answers nothing for its JID in that case: unverifiable).
        assert checked.stdout.startswith(f"{archived_as}: server ") and "0 messages missing" in checked.stdout
    unknown = verify(config, "--room", f"never-{room}")
    assert unknown.returncode == 1 and f"error: no archived room 'never-{room}'" in unknown.stderr
    integrity = verify(config, "--integrity", "--room", room.upper())
    assert integrity.returncode == 0, integrity.stdout + integrity.stderr
    assert "integrity: ok, 2 events in 1 stream verified" in integrity.stdout
