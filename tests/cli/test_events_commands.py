"""`chat-archive events` and `chat-archive log`, run as real processes on both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import make, message
from archive import events as ev

CLI = [str(Path(sys.executable).with_name("chat-archive"))]


def run_cli(*args, store_url, cwd=None, env=None, input=None):
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": store_url, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60, input=input)


@pytest.fixture
def filled_store(event_store):
    event_store.append(
        [make(ev.OccupantJoined, 0, nick="alice", role="participant")]
        + [message(t, body=f"hello {t}") for t in range(1, 4)]
        + [message(9, body="elsewhere", room="other@conference.localhost")]
    )
    return event_store


def test_events_prints_a_rooms_events_as_json_lines(filled_store, store_url):
    result = run_cli("events", "lobby@conference.localhost", store_url=store_url)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event"]["type"] for line in lines] == ["occupant_joined"] + ["message_posted"] * 3
    assert [line["event"].get("body") for line in lines[1:]] == ["hello 1", "hello 2", "hello 3"]
    assert all(line["event"]["room"] == "lobby@conference.localhost" for line in lines)


def test_events_filters_by_time(filled_store, store_url):
    result = run_cli(
        "events", "lobby@conference.localhost", "--from", "2024-05-01T12:00:02Z", "--to", "2024-05-01T12:00:03Z",
        store_url=store_url,
    )
    assert [json.loads(line)["event"]["body"] for line in result.stdout.splitlines()] == ["hello 2"]


@pytest.mark.parametrize("form", [["--from", "-1d"], ["--from=-1d"], ["--to", "+1d", "--from", "-3650d"]])
def test_events_take_times_back_from_now_in_both_option_forms(filled_store, store_url, form):
    # The factories' events lie in 2024: "since yesterday" finds none, ten years back finds all.
    result = run_cli("events", "lobby@conference.localhost", *form, store_url=store_url)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == (4 if "-3650d" in form else 0)


def test_a_room_is_named_by_its_jid_in_any_case(filled_store, store_url, tmp_path):
    """JIDs are not case-sensitive: the API's room endpoints take Lobby@Conference.localhost for the archived
    lobby@conference.localhost, and so do the CLI's events, transcript and export (they said 'no events')."""
    given = "Lobby@Conference.LOCALHOST"
    events = run_cli("events", given, store_url=store_url)
    assert events.returncode == 0, events.stderr
    assert [json.loads(line)["event"]["room"] for line in events.stdout.splitlines()] == ["lobby@conference.localhost"] * 4
    env = {"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    assert run_cli("project", "--once", store_url=store_url, cwd=tmp_path, env=env).returncode == 0
    transcript = run_cli("transcript", given, store_url=store_url, cwd=tmp_path, env=env)
    assert transcript.returncode == 0, transcript.stderr
    assert "hello 3" in transcript.stdout
    bundle = tmp_path / "lobby.zip"
    export = run_cli("export", "--format", "jsonl", "--room", given, "-o", str(bundle), store_url=store_url, cwd=tmp_path,
                     env=env)  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert "4 events (3 messages) from 1 room in 1 file;" in export.stdout  # it said "1 rooms in 1 files"
    checked = run_cli("verify-export", str(bundle), store_url=store_url, cwd=tmp_path)
    assert checked.returncode == 0 and checked.stdout.startswith("ok: 1 file, 4 events,"), checked.stdout


def test_room_takes_a_bare_name_in_every_command_as_search_does(filled_store, store_url, tmp_path):
    """One rule for --room and ROOM (``RoomNames.given``): search took a bare name (``lobby``), events,
    transcript and export did not ("no events for room 'lobby'")."""
    events = run_cli("events", "LOBBY", store_url=store_url)
    assert events.returncode == 0, events.stderr
    assert len(events.stdout.splitlines()) == 4
    env = {"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    assert run_cli("project", "--once", store_url=store_url, cwd=tmp_path, env=env).returncode == 0
    transcript = run_cli("transcript", "lobby", store_url=store_url, cwd=tmp_path, env=env)
    assert transcript.returncode == 0 and "hello 3" in transcript.stdout, transcript.stderr
    export = run_cli("export", "--format", "jsonl", "--room", "lobby", "-o", str(tmp_path / "l.zip"),
                     store_url=store_url, cwd=tmp_path, env=env)  # fmt: skip
    assert export.returncode == 0 and "4 events (3 messages) from 1 room" in export.stdout, export.stderr
    filled_store.append([message(1, body="namesake", room="lobby@muc.elsewhere")])
    # Where one room is meant, a name two rooms share is a bad argument naming both.
    both = run_cli("events", "lobby", store_url=store_url)
    assert both.returncode == 2 and "Traceback" not in both.stderr
    assert "lobby@conference.localhost, lobby@muc.elsewhere" in both.stderr and "its JID" in both.stderr


def test_log_prints_the_global_log_after_a_position(filled_store, store_url):
    everything = [json.loads(line) for line in run_cli("log", store_url=store_url).stdout.splitlines()]
    assert len(everything) == 5
    after = run_cli("log", "--after", str(everything[1]["position"]), "--limit", "2", store_url=store_url)
    assert [json.loads(line) for line in after.stdout.splitlines()] == everything[2:4]


@pytest.mark.parametrize(
    "args, complaint, status",
    [
        (["log", "--after", "ten"], "'ten' is not a whole number", 2),
        (["log", "--after", "-1"], "must be at least 0", 2),
        (["events", "lobby@conference.localhost", "--from", "yesterday"], "is not a time", 2),
        (["events", "lobby@conference.localhost", "--from", "2024-05-02", "--to", "2024-05-01"], "later than", 2),
        (["events", "nobody@conference.localhost"], "error: no archived room 'nobody@conference.localhost' (rooms: "
         "lobby@conference.localhost, other@conference.localhost)", 1),  # the archive's answer, not a bad argument
        (["transcript", "nobody"], "error: no archived room 'nobody'", 1),
        (["verify", "--integrity", "--room", "nobody"], "error: no archived room 'nobody'", 1),
        (["export", "--room", "nobody", "-o", "unused.zip"], "error: no archived room 'nobody'", 1),
        (["events", "lobby@conference.localhost", "--from", "-99999999999d"], "out of range", 2),
        (["events", "lobby@conference.localhost", "--to", "9999-12-31T23:59:59-05:00"], "out of range", 2),
        (["audit", "--since", "-9999999d"], "out of range", 2),
        (["audit", "--since", "garbage"], "is not a time", 2),
        (["audit", "--since", "2024-05-02", "--until", "2024-05-01"], "later than", 2),
        (["transcript", "lobby@conference.localhost", "--from", "garbage"], "is not a time", 2),
        (["export", "--from", "garbage", "-o", "unused.zip"], "is not a time", 2),
        (["hold", "place", "--case", "c", "--room", "lobby"], "not a room's JID", 2),
        # On purpose unlike the other commands' --room: a hold covers rooms archived later too, which a bare name
        # read now would miss; it says so.
        (["hold", "place", "--case", "c", "--room", "lobby"], "rooms archived later", 2),
        (["frobnicate"], "invalid choice", 2),
        # A file that is not there is not a damaged bundle ("PROBLEM not a readable ZIP file: [Errno 2] ...").
        (["verify-export", "nope.zip"], "verify-export: error: cannot read nope.zip: No such file or directory", 1),
    ],
)
def test_bad_arguments_give_a_message_and_exit_status_2(filled_store, store_url, tmp_path, args, complaint, status):
    """README: bad arguments exit 2, errors of the archive 1 (a time that does not parse was 1, as argparse's own
    refusals were 2)."""
    result = run_cli(*args, store_url=store_url, cwd=tmp_path)
    assert result.returncode == status, result.stderr
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("query", ["on:9999-12-31", "after:-99999999999d", "before:0001-01-01T00:00:00+01:00"])
def test_a_search_for_a_time_out_of_range_is_a_message_not_a_traceback(filled_store, store_url, tmp_path, query):
    """As the API answers them (400 out_of_range): times past datetime's years overflow in its arithmetic."""
    result = run_cli("search", query, store_url=store_url, cwd=tmp_path,
                     env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})  # fmt: skip
    assert result.returncode == 2  # a bad argument
    assert "out of range" in result.stderr and "Traceback" not in result.stderr


def test_search_hits_in_a_terminal_cannot_forge_lines_or_send_escapes(event_store, store_url, tmp_path):
    """A hit's text went to the terminal as it was said: a line break began a line that read as another hit,
    and escape sequences reached the terminal."""
    event_store.append([message(1, "deploy done\n2024-05-01T12:00:40Z  lobby@conference.localhost  <ceo>  wire\x1b[2J",
                                nick="mallory")])
    env = {"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    assert run_cli("project", "--once", store_url=store_url, cwd=tmp_path, env=env).returncode == 0
    result = run_cli("search", "deploy", store_url=store_url, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    hits = [line for line in result.stdout.splitlines() if line.startswith("2024-")]
    assert len(hits) == 1 and "<mallory>  *deploy* done" in hits[0]
    assert "\x1b" not in result.stdout and "wire\\x1b[2J" in result.stdout


def test_a_bad_store_url_is_reported_without_a_traceback(tmp_path):
    result = run_cli("log", store_url="mysql://nowhere", cwd=tmp_path)
    assert result.returncode == 2  # a configuration error, like a bad argument
    assert "scheme must be" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_every_command_with_one_line(tmp_path):
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0
    for command in ("events", "log"):
        assert f"    {command} " in result.stdout


@pytest.mark.parametrize("args", [["events", "lobby"], ["log"], ["transcript", "lobby"], ["search", "deploy"],
                                  ["export", "-o", "x.zip"], ["hold", "place", "--case", "Acme", "--room", "lobby@x"],
                                  ["hold", "list"], ["purge", "--dry-run"], ["export-log", "backup.gz"],
                                  ["verify", "--integrity"], ["status"], ["audit"], ["rebuild"]])
def test_a_command_run_by_hand_refuses_a_store_that_is_not_there_and_makes_none(tmp_path, args):
    """Run from another directory (``./data`` is relative), such a command made an empty archive there and
    answered from it (no events, no rooms, 0 hits, as if the archive were empty) or wrote to it: a hold placed
    there kept nothing from the real archive's purge, and a backup of it held nothing."""
    missing = tmp_path / "elsewhere" / "events.sqlite"
    result = run_cli(*args, store_url=f"sqlite:///{missing}", cwd=tmp_path,
                     env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"error: no archive at {missing}" in result.stderr and "--config" in result.stderr
    assert not missing.parent.exists()
