"""`chat-archive status` on an archive whose projections have not run yet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from archive.application import open_event_store
from archive.times import format_time
from tests.factories import message

CLI = str(Path(sys.executable).with_name("chat-archive"))


def test_status_shows_the_head_and_every_projections_lag(tmp_path):
    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        store.append([message(t) for t in range(7)])
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": url, "CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    text = subprocess.run([CLI, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "event log head: 7" in text.stdout
    for name in ("transcripts", "presence", "search"):
        assert f"projection {name}" in text.stdout
    assert "listener: no status written yet" in text.stdout
    data = json.loads(
        subprocess.run([CLI, "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    )
    assert {p["name"]: p["lag"] for p in data["projections"]} == {"transcripts": 7, "presence": 7, "search": 7}


def test_status_lists_spans_in_which_messages_may_be_missing_and_fails_when_the_listener_is_down(tmp_path):
    from archive import events as ev
    from tests.factories import at, make

    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        store.append([
            make(ev.ArchiveGap, 20, gap_start=at(10), gap_end=at(20), kind=ev.GapKind.MESSAGES,
                 explanation="listener away and the room keeps no archive: 0 messages recovered"),
            make(ev.ArchiveGap, 40, gap_start=at(30), gap_end=at(40), kind=ev.GapKind.PRESENCE, verified=True),
        ])  # fmt: skip
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": url, "CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index"),
           "CHAT_ARCHIVE_XMPP_JID": "archiver@localhost", "CHAT_ARCHIVE_XMPP_STATUS_FILE": str(tmp_path / "status.json")}
    subprocess.run([CLI, "project", "--once"], cwd=tmp_path, env=env, capture_output=True, timeout=60, check=True)
    text = subprocess.run([CLI, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 1, "a configured listener that never ran is down"
    assert "listener state: not-started" in text.stdout
    assert "spans in which messages may be missing (1;" in text.stdout
    assert "lobby@conference.localhost 2024-05-01T12:00:10Z .. 2024-05-01T12:00:20Z: listener away and the room keeps no archive" in text.stdout
    data = json.loads(subprocess.run([CLI, "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True).stdout)
    assert [(g["kind"], g["room"]) for g in data["incomplete"]] == [("messages", "lobby@conference.localhost")]
    assert data["liveness"] == {"state": "not-started", "ok": False, "problems": ["no listener status written (never started here?)"]}


def test_status_says_why_the_search_index_cannot_be_used_and_shows_the_rest(tmp_path):
    """An index of an earlier schema (being rebuilt by `up`, or waiting for `rebuild search`) is a state to
    report beside the others, not an error that hides them."""
    from chat_archive.bootstrap import rebuild_projections, search_projection
    from chat_archive.config import load_config
    from tests.projections.search.old_schema import downgrade

    url = f"sqlite:///{tmp_path}/events.sqlite"
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": url, "CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    with open_event_store(url) as store:
        store.append([message(t) for t in range(7)])
        config = load_config(None, env)
        rebuild_projections(config, store, ["search"], progress=False)
    downgrade(search_projection(config))
    text = subprocess.run([CLI, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "projection transcripts" in text.stdout
    assert "projection search" in text.stdout and "schema version" in text.stdout
    data = json.loads(
        subprocess.run([CLI, "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    )
    assert "rebuild" in {p["name"]: p for p in data["projections"]}["search"]["problem"]


def test_a_listener_note_this_version_cannot_read_is_no_status_not_a_crash(tmp_path, caplog):
    """The listener and the API or `status` on different versions: the note the listener keeps in the store is one
    this version cannot decode. Every page reading the heartbeat (/presence, /rooms, /state, a room's page) was a
    500, and `chat-archive status` crashed: it is no status, said so."""
    from chat_archive.bootstrap import open_views
    from chat_archive.config import load_config
    from archive.lease import StoreLease
    from ingest.status import LEASE

    url = f"sqlite:///{tmp_path}/events.sqlite"
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": url, "CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index"),
           "CHAT_ARCHIVE_XMPP_JID": "archiver@localhost", "CHAT_ARCHIVE_XMPP_STATUS_FILE": str(tmp_path / "status.json")}
    with open_event_store(url) as store:
        store.append([message(0)])
        newer = StoreLease(store, LEASE)
        newer.acquire()
        assert newer.write_note(b'{"jid": "archiver@localhost", "pid": "a later version\'s"}')
        newer.release()
        config = load_config(None, environ=env)
        with open_views(config, store) as views:
            assert views.last_known("lobby@conference.localhost").away_since is None  # read, not raised
    assert "listener status in the store is not valid" in caplog.text
    text = subprocess.run([CLI, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 1, text.stderr
    assert "listener state: not-started" in text.stdout
    assert "the listener status in the store is not valid" in text.stdout, text.stdout


def test_status_of_a_listener_gone_says_its_rooms_and_connection_as_of_when(tmp_path):
    """A listener stopped still showed "rooms joined (3)", and one killed outright "listener: ... connected" above
    "listener state: dead": what its last status said, as if it held now."""
    from datetime import timedelta

    from archive.times import utcnow
    from ingest.status import ListenerStatus, write_status

    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        store.append([message(0)])
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    then = utcnow() - timedelta(minutes=5)
    rooms = [f"{name}@conference.localhost" for name in ("lobby", "dev", "random")]
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": url, "CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index"),
           "CHAT_ARCHIVE_XMPP_JID": "archiver@localhost", "CHAT_ARCHIVE_XMPP_STATUS_FILE": str(tmp_path / "status.json")}
    for stopped in (False, True):
        write_status(tmp_path / "status.json", ListenerStatus(
            jid="archiver@localhost", pid=dead.pid, host=os.uname().nodename, started_at=then, updated_at=then,
            connected=True, connected_since=then, rooms_joined=rooms, stopped=stopped))  # fmt: skip
        text = subprocess.run([CLI, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert text.returncode == 1, text.stderr
        state = "stopped" if stopped else "dead"
        assert f"listener state: {state}" in text.stdout
        [first] = [line for line in text.stdout.splitlines() if line.startswith("listener: ")]
        assert f") {state}" in first and "connected" not in first, first
        assert "rooms joined (3)" not in text.stdout
        assert f"rooms joined as of {format_time(then)} (3)" in text.stdout, text.stdout
        assert "connected since: -" in text.stdout
