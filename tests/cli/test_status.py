"""`chat-archive status` on an archive whose projections have not run yet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from archive.application import open_event_store
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
