"""`up --demo` as a newcomer meets it: the guide it prints, its sign-in token kept across runs,
and a demo killed with SIGKILL cleaned up by the next one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from chat_archive.demo_leftovers import DIRECTORY_PREFIX, OWNER_FILE, SERVER_FILE, remove_left_behind

from .test_up import wait_for_line

CLI = str(Path(sys.executable).with_name("chat-archive"))


def start_demo(cwd: Path, tmp: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp), "CHAT_ARCHIVE_PROJECTIONS_COMMIT_INTERVAL": "60"}
    return subprocess.Popen(
        [CLI, "up", "--demo", "--port", "0"], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_demo_is_cleaned_up_by_the_next_which_reuses_its_token(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    try:
        killed_then_restarted(tmp_path, tmp)
    finally:
        remove_left_behind(tmp)  # whatever a failing run left


def killed_then_restarted(tmp_path: Path, tmp: Path) -> None:
    first = start_demo(tmp_path, tmp)
    try:
        deadline = time.monotonic() + 90
        url = wait_for_line(first, r"on (http://\S+)/", deadline).group(1)
        token = wait_for_line(first, r"token \(compliance role\): (\S+)", deadline).group(1)
        guide = wait_for_line(first, r"saved in (\S+)\. Sign in at (\S+)", deadline)
        assert (tmp_path / guide.group(1)).read_text().strip() == token and guide.group(2) == f"{url}/signin"
        assert ((tmp_path / guide.group(1)).stat().st_mode & 0o777) == 0o600
        account = wait_for_line(first, r"join as (\S+) with password (\S+)\.", deadline)
        assert account.groups() == ("guest@localhost", "guest-demo")
        (left,) = tmp.glob(DIRECTORY_PREFIX + "*")
        assert int((left / OWNER_FILE).read_text()) == first.pid
        server = int((left / SERVER_FILE).read_text())
    finally:
        first.kill()  # no chance to clean up
        first.wait(10)
    assert alive(server) and left.exists()  # what a SIGKILL leaves behind

    second = start_demo(tmp_path, tmp)
    try:
        deadline = time.monotonic() + 90
        assert wait_for_line(second, r"token \(compliance role\): (\S+)", deadline).group(1) == token
        assert "the same as last time" in wait_for_line(second, r"saved in", deadline).string
        assert not left.exists() and not alive(server)
        assert len(list(tmp.glob(DIRECTORY_PREFIX + "*"))) == 1  # only the running demo's own
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    assert not list(tmp.glob(DIRECTORY_PREFIX + "*"))
    listing = subprocess.run([CLI, "token", "list"], cwd=tmp_path, capture_output=True, text=True).stdout
    demo_tokens = [line for line in listing.splitlines() if "demo" in line]
    assert len(demo_tokens) == 1 and re.search(r"expires \d{4}-", demo_tokens[0]) and "never" not in demo_tokens[0]


def test_dev_runs_the_command_line_without_knowing_about_the_virtualenv(tmp_path):
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [str(root / "dev"), "chat-archive", "search", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: chat-archive search" in result.stdout and "--room ROOM" in result.stdout


def test_dev_usage_names_every_command_it_takes(tmp_path):
    """`./dev` alone printed up, test, bench and chat-archive, not install."""
    script = Path(__file__).resolve().parents[2] / "dev"
    taken = re.findall(r"^  ([a-z-]+)\)$", script.read_text(), re.MULTILINE)
    result = subprocess.run([str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "install" in taken
    assert [command for command in taken if f"./dev {command}" not in result.stdout] == []


def test_the_demo_token_replaces_the_never_expiring_ones_earlier_demos_left(tmp_path):
    from chat_archive.demo_guide import sign_in_token
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    tokens = open_token_store(f"sqlite:///{tmp_path}/events.sqlite", cache_seconds=0)
    left = [tokens.create(Role.COMPLIANCE, label="demo")[0] for _ in range(3)]  # as `up --demo` used to
    mine, _ = tokens.create(Role.COMPLIANCE, label="legal team")
    token, reused = sign_in_token(tokens, tmp_path / "data" / "demo-token")
    assert not reused and all(tokens.lookup(old) is None for old in left)
    assert tokens.lookup(mine) is not None and tokens.lookup(token).expires_at
    assert sign_in_token(tokens, tmp_path / "data" / "demo-token") == (token, True)
    assert (tmp_path / "data" / "demo-token").stat().st_mode & 0o777 == 0o600


def test_a_second_up_here_is_refused_first_and_leaves_the_running_demo_alone(tmp_path):
    """A second `./dev up` started a Prosody, then was refused by the views' lease ("another projection runner
    ..."), and on its way out deleted the running demo's data/demo-xmpp.json: `verify` beside the demo then said
    "[xmpp] jid is empty". It is refused before it starts anything or touches a file of the running one."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    first = start_demo(tmp_path, tmp)
    try:
        url = wait_for_line(first, r"on (http://\S+)/", time.monotonic() + 90).group(1)
        published = (tmp_path / "data" / "demo-xmpp.json").read_bytes()
        demos = sorted(tmp.glob(DIRECTORY_PREFIX + "*"))
        second = subprocess.run([CLI, "up", "--demo", "--port", "0"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60, env={**os.environ, "TMPDIR": str(tmp)})  # fmt: skip
        assert second.returncode == 1, second.stderr
        assert f"chat-archive up is already running here (pid {first.pid}, {url})" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr and "Prosody" not in second.stderr
        assert sorted(tmp.glob(DIRECTORY_PREFIX + "*")) == demos  # no server of its own started
        assert (tmp_path / "data" / "demo-xmpp.json").read_bytes() == published
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        remove_left_behind(tmp)
    assert not (tmp_path / "data" / "demo-xmpp.json").exists()  # its own, withdrawn by the run that wrote it
