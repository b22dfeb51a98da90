"""A command-line read that streams its answer is recorded however it ends (README, "Audit trail"): piped into
something that stops reading early (`| head`), or stopped by Ctrl-C, after content went out. Each wrote its
record only once everything was out: `events ROOM | head` ended in BrokenPipeError (exit 0), Ctrl-C in 130, and
no `content_read` said who had read what. Real processes on both stores."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from archive.application import open_event_store
from archive.audit import record_read
from tests.factories import message

CLI = [str(Path(sys.executable).with_name("chat-archive"))]
ROOM = "lobby@conference.localhost"
EVENTS = 3000  # each command's answer many times a pipe's buffer (64 KiB) and the process's own (8 KiB)
AUDIT_RECORDS = 150  # with 1,000-character queries: `audit` prints ~150 KiB

COMMANDS = {
    "events": ["events", ROOM],
    "log": ["log"],
    "transcript": ["transcript", ROOM],
    "audit": ["audit"],
    "export-log": ["export-log", "-"],  # compressed, of bodies that hardly compress
}


@pytest.fixture
def filled(event_store, store_url, tmp_path):
    event_store.append([message(t, secrets.token_hex(100), stanza_id=f"s{t}") for t in range(EVENTS)])
    for n in range(AUDIT_RECORDS):
        record_read(event_store, via="api", endpoint="search", role="analyst", query=f"{n} " + "q" * 1000, results=1)
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": store_url, "CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    return env


def started(command: str, env: dict, cwd: Path) -> subprocess.Popen:
    """The command running, its answer begun: its first 4 KiB read (beyond `export-log`'s gzip header)."""
    if command == "transcript":
        built = subprocess.run([*CLI, "project", "--once"], env=env, cwd=cwd, capture_output=True, timeout=120)
        assert built.returncode == 0, built.stderr
    # Ctrl-C as in a terminal: a suite started in the background (`./dev test &`, CI) runs with SIGINT ignored,
    # which children inherit, and the command would then read on to the end.
    process = subprocess.Popen([*CLI, *COMMANDS[command]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               cwd=cwd, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert len(process.stdout.read(4096)) == 4096, process.stderr.read()
    return process


def last_record(store_url: str):
    with open_event_store(store_url) as store:
        return list(store.read_audit())[-1].event


@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_piped_into_a_reader_that_stops_early_is_recorded(filled, store_url, tmp_path, command):
    process = started(command, filled, tmp_path)
    process.stdout.close()  # as `head` exits
    status = process.wait(60)
    stderr = process.stderr.read().decode()
    # A backup cut short is a failed backup (`cannot write -`); the rest end quietly, as with `head`.
    assert status == (1 if command == "export-log" else 0) and "Traceback" not in stderr, stderr
    record = last_record(store_url)
    assert (record.via, record.endpoint, record.role) == ("cli", command, "operator")
    total = AUDIT_RECORDS if command == "audit" else EVENTS
    assert 0 < record.results < total  # what it had written out when the reader went


@pytest.mark.parametrize("command", ["events", "transcript"])
def test_a_read_stopped_by_ctrl_c_is_recorded(filled, store_url, tmp_path, command):
    process = started(command, filled, tmp_path)  # then blocked: its answer fills the pipe nobody reads
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)  # what it still flushes on its way out
    assert process.returncode == 130 and b"Traceback" not in stderr, stderr
    record = last_record(store_url)
    assert (record.via, record.endpoint) == ("cli", command) and 0 < record.results < EVENTS
