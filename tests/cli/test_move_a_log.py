"""The README's "move a log": `chat-archive log > archive.jsonl && chat-archive --config other.toml import
archive.jsonl`, then the other archive's projections and its integrity check, as a newcomer types them. The
log holds the source's checkpoints, which vouch for the source's chains (its audit trail's too, which the log
does not hold): imported as the other archive's own, `verify --integrity` there said "BROKEN chat-archive:audit:
... deleted (a checkpoint covers version N)", exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive.application import open_event_store
from archive.integrity import Checkpoints
from tests.cli.test_moving import history
from tests.factories import message

BIN = Path(sys.executable).parent


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("CHAT_ARCHIVE_")}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("target_holds_events", "log"), [(False, "log"), (True, "log"), (False, "log --after 5")])
def test_a_log_moved_as_the_readme_says_verifies_there(tmp_path, store_url, target_holds_events, log):
    with open_event_store(f"sqlite:///{tmp_path}/data/events.sqlite") as source:
        source.append(history()[:60])
    assert shell("chat-archive log --limit 1 > /dev/null", tmp_path).returncode == 0  # an audit record
    with open_event_store(f"sqlite:///{tmp_path}/data/events.sqlite") as source:
        assert Checkpoints(source).write() is not None  # covering the rooms and the audit trail
    if target_holds_events:  # its rooms' versions are not the source's
        with open_event_store(store_url) as target:
            target.append([message(0, "before the move", room="lobby@conference.localhost", stanza_id="b0")])
    (tmp_path / "other.toml").write_text(f'[store]\nurl = "{store_url}"\n[index]\npath = "{tmp_path}/other-index"\n'
                                         f'[projections]\nurl = "sqlite:///{tmp_path}/other-views.sqlite"\n')
    moved = shell(f"chat-archive {log} > archive.jsonl && chat-archive --config other.toml import archive.jsonl", tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "1 checkpoint" in moved.stdout, moved.stdout  # said: left out, with why
    projected = shell("chat-archive --config other.toml project --once", tmp_path)
    assert projected.returncode == 0, projected.stderr
    checked = shell("chat-archive --config other.toml verify --integrity", tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "integrity: ok" in checked.stdout and "BROKEN" not in checked.stdout
    # What holds here is kept: the rooms' heads where their versions are the source's (not in a partial log's)
    assert f"and {0 if log != 'log' else 1} checkpoint" in checked.stdout, checked.stdout
    again = shell("chat-archive --config other.toml import archive.jsonl", tmp_path)  # idempotent, as before
    assert again.returncode == 0 and "imported 0 new events" in again.stdout, again.stdout + again.stderr
