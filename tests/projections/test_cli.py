"""`chat-archive project` and `chat-archive rebuild` as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from projections.viewdb_backends import default_views_url
from projections.views import Views
from tests.factories import message

ROOT = Path(__file__).resolve().parents[2]
ROOM = "lobby@conference.localhost"


def cli(tmp_path, store_url, *args, **kwargs):
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": store_url, "PYTHONPATH": str(ROOT),
           "CHAT_ARCHIVE_PROJECTIONS_COMMIT_INTERVAL": "3600"}
    return subprocess.Popen([sys.executable, "-m", "chat_archive.cli", *args], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_project_stops_cleanly_on_a_signal_and_commits(tmp_path, event_store, store_url):
    sig = signal.SIGTERM if store_url.startswith("sqlite") else signal.SIGINT  # both, without doubling the runs
    event_store.append([message(i, f"m{i}") for i in range(50)])
    process = cli(tmp_path, store_url, "project")
    try:
        assert "following the event log" in process.stderr.readline()
        time.sleep(1.0)  # its first pages are applied long before; the hour-long interval has not passed
        process.send_signal(sig)
        assert process.wait(30) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    with Views(default_views_url(store_url), event_store) as views:
        assert [p.position() for p in views.projections()] == [event_store.head()] * 2
        assert len(views.transcripts.page(ROOM, limit=100).lines) == 50


def test_rebuild_command_shows_progress_and_swaps(tmp_path, event_store, store_url):
    event_store.append([message(i, f"m{i}") for i in range(30)])
    process = cli(tmp_path, store_url, "rebuild", "transcripts")
    assert process.wait(60) == 0
    err = process.stderr.read()
    assert "events/s" in err and "ETA" in err and "rebuilt transcripts: 30 events" in err
    with Views(default_views_url(store_url), event_store) as views:
        assert [line.body for line in views.transcripts.page(ROOM).lines] == [f"m{i}" for i in range(30)]
        assert views.recorder.generations("transcripts") == (2, None)
        assert views.recorder.generations("presence") == (1, None)


def test_an_index_first_built_by_project_once_owes_no_rebuild_for_purges_recorded_before(tmp_path):
    """A new API host's first index, built from a long log with `project --once`: purges recorded applied before
    it began cannot have anything in it."""
    from archive.application import open_event_store
    from archive.events import COMPLIANCE_STREAM, PurgeApplied
    from archive.times import utcnow
    from chat_archive.bootstrap import search_projection
    from chat_archive.config import load_config

    url = f"sqlite:///{tmp_path}/events.sqlite"
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": url, "CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    now = utcnow()
    with open_event_store(url) as store:
        store.append([message(t) for t in range(5)] + [PurgeApplied(
            room=COMPLIANCE_STREAM, occurred_at=now, recorded_at=now, purge_position=1, search_index="another host's")])
    done = subprocess.run([str(Path(sys.executable).with_name("chat-archive")), "project", "--once"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    index = search_projection(load_config(None, env))
    assert index.position() == 6 and not index.rebuild_owed()
    index.close()
