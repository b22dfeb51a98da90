"""A projection process killed with SIGKILL mid-stream resumes with no event missing or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from archive import events as ev
from projections.rebuild import rebuild
from projections.viewdb_backends import default_views_url
from projections.views import Views
from tests.factories import make, message
from tests.projections.conftest import dump

ROOT = Path(__file__).resolve().parents[2]


def batch(n: int, size: int) -> list:
    """Messages with corrections, retractions and presence, so a replay would show."""
    out = []
    for i in range(n * size, (n + 1) * size):
        room = f"r{i % 3}@conference.localhost"
        out.append(message(i, f"m{i}", nick=f"n{i % 5}", room=room, message_id=f"id{i}"))
        if i % 7 == 0:
            out.append(make(ev.MessageCorrected, i + 0.5, room, nick=f"n{i % 5}", replaces_id=f"id{i}", body="fixed"))
        if i % 11 == 0:
            out.append(make(ev.MessageRetracted, i + 0.6, room, target_id=f"sid-{i}-n{i % 5}", moderated=True,
                            by_nick="mod"))
        if i % 13 == 0:
            out.append(make(ev.OccupantJoined, i, room, nick=f"p{i % 4}"))
        if i % 17 == 0:
            out.append(make(ev.PresenceChanged, i, room, nick=f"p{i % 4}", show="away"))
    return out


def project(tmp_path, store_url, *args):
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": store_url, "CHAT_ARCHIVE_PROJECTIONS_COMMIT_INTERVAL": "0.02",
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "chat_archive.cli", "project", *args], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE)


def test_sigkill_mid_batch_then_restart(tmp_path, event_store, store_url):
    views = Views(default_views_url(store_url), event_store)
    transcripts, presence = views.projections()
    process = project(tmp_path, store_url)
    try:
        # Appending while the process opens the store can deadlock PostgreSQL's table setup: wait.
        ready = process.stderr.readline()
        assert b"following the event log" in ready, ready + process.stderr.read()
        n = 0
        deadline = time.monotonic() + 60
        # Keep the log growing until the process has committed something, so it dies mid-stream.
        while transcripts.position() == 0 or presence.position() == 0:
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            event_store.append(batch(n, 300))
            n += 1
        for _ in range(3):
            event_store.append(batch(n, 300))
            n += 1
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    killed_at = (transcripts.position(), presence.position())
    assert 0 < min(killed_at) < event_store.head()  # it died with work left to do
    event_store.append(batch(n, 300))

    again = project(tmp_path, store_url, "--once")
    assert again.wait(120) == 0, again.stderr.read()
    assert [transcripts.position(), presence.position()] == [event_store.head()] * 2

    scratch_url = f"sqlite:///{tmp_path}/scratch.sqlite"
    with Views(scratch_url, event_store) as scratch:
        rebuild(event_store, scratch.projections())
        assert dump(views) == dump(scratch)
    messages = [r.event for r in event_store.read_log() if isinstance(r.event, ev.MessagePosted)]
    lines = []
    for room in {m.room for m in messages}:
        page = views.transcripts.page(room, limit=1000)
        while True:
            lines += [line for line in page.lines if line.kind == "message"]
            if not page.next_cursor:
                break
            page = views.transcripts.page(room, limit=1000, cursor=page.next_cursor)
    assert len(lines) == len(messages) == len({line.id for line in lines})
    views.close()
