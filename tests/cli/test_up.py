"""`chat-archive up --demo`: the main job, end to end, as a newcomer runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CLI = str(Path(sys.executable).with_name("chat-archive"))


def get_json(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_for_line(process, pattern: str, deadline: float) -> re.Match:
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"`up` exited early: {process.stderr.read()}")
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in time")


def test_up_demo_archives_demo_traffic_and_serves_it_then_stops_cleanly(tmp_path):
    env = {**os.environ, "CHAT_ARCHIVE_INDEX_COMMIT_INTERVAL": "0.2"}
    process = subprocess.Popen(
        [CLI, "up", "--demo", "--port", "0"], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        url = wait_for_line(process, r"on (http://\S+)/", deadline).group(1)
        token = wait_for_line(process, r"token \(compliance role\): (\S+)", deadline).group(1)
        searchable = listed = set()
        while time.monotonic() < deadline and not (searchable and searchable <= listed):
            # The demo users talk within seconds; the index follows within a second, the
            # views (which list rooms) at their demo commit interval of a few seconds.
            hits = get_json(f"{url}/api/v1/search?q=after:2000-01-01&sort=newest", token).get("hits", [])
            searchable = {hit["room"] for hit in hits}
            listed = {r["room"] for r in get_json(f"{url}/api/v1/rooms", token)["rooms"]}
            time.sleep(0.5)
        assert searchable, "no demo message became searchable"
        assert searchable <= listed, "rooms with searchable messages are missing from /rooms"
        # From another shell, `verify` finds the demo's server (its port and password are new every run)
        # and checks the archive against the rooms' own archives while the users go on talking.
        checked = subprocess.run([CLI, "verify", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "running demo's server" in checked.stderr
        report = json.loads(checked.stdout)
        assert report["complete"] and {r["room"] for r in report["rooms"]} >= searchable, report
        assert sum(r["server"] for r in report["rooms"]) > 0, report
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, process.stderr.read()
    after = subprocess.run([CLI, "verify"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert after.returncode == 2 and "[xmpp] jid is empty" in after.stderr, "a stopped demo is not offered"
    # Everything that was archived reached every projection before the process ended.
    status = json.loads(subprocess.run([CLI, "status", "--json"], cwd=tmp_path, capture_output=True, text=True).stdout)
    assert status["head"] > 0
    assert all(p["position"] == status["head"] for p in status["projections"]), status
    assert status["listener"]["stopped"] is True and status["liveness"]["state"] == "stopped"
    assert list(tmp_path.glob("data/*")), "everything lives under ./data/"
    # Everything it archived is chained and checkpointed, and the API's reads were recorded.
    integrity = subprocess.run([CLI, "verify", "--integrity", "--json"], cwd=tmp_path, capture_output=True, text=True)
    report = json.loads(integrity.stdout)
    assert integrity.returncode == 0 and report["checkpoints"] >= 1 and report["unchained"] == 0, integrity.stdout
    trail = subprocess.run([CLI, "audit", "--json"], cwd=tmp_path, capture_output=True, text=True).stdout.splitlines()
    assert any(json.loads(line)["record"]["endpoint"].startswith("search /api/v1/search") for line in trail)


def test_up_without_a_server_or_demo_says_what_to_do(tmp_path):
    result = subprocess.run([CLI, "up", "--port", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2  # a configuration error, like a bad argument
    assert "[xmpp] jid is empty" in result.stderr and "Traceback" not in result.stderr
