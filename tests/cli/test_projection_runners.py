"""One projection runner per views: a second one (`project`, `project --once`, another `up`) beside a running
one is refused, naming it, and the running one goes on. Both wrote the same lines: whichever committed second
failed on a duplicate line and stopped (a demo's `up` killed by a `project --once`)."""

from __future__ import annotations

import os
import signal
import subprocess

from archive import events as ev
from tests.cli.test_events_commands import CLI, run_cli
from tests.factories import make, message

ROOM = "lobby@conference.localhost"


def test_a_second_runner_on_the_same_views_is_refused_and_the_first_goes_on(event_store, store_url, tmp_path):
    event_store.append([make(ev.OccupantJoined, 0, nick="alice", role="participant")] + [message(1, body="before")])
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": store_url}
    first = subprocess.Popen([*CLI, "project", "--no-search"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert "following the event log" in first.stderr.readline()
        event_store.append([message(t, body=f"while running {t}") for t in range(2, 5)])
        second = run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path)
        assert second.returncode == 1, second.stderr
        assert "projection runner" in second.stderr and f"pid {first.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None, "the running one goes on"
    finally:
        first.send_signal(signal.SIGINT)
        _, rest = first.communicate(timeout=60)
    assert first.returncode == 0, rest
    transcript = run_cli("transcript", ROOM, store_url=store_url, cwd=tmp_path)
    assert all(f"while running {t}" in transcript.stdout for t in range(2, 5)), transcript.stdout
