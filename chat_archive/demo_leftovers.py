"""What a demo killed outright (``kill -9``) leaves behind: its Prosody and its directory.

Each demo directory records the pid of the process that owns it and of its
Prosody; the next demo stops the Prosody of every directory whose owner is gone
(only if that pid still runs that directory's config: pids are reused) and
removes the directory. A demo whose owner still runs is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

from archive.lease import process_alive

log = logging.getLogger("chat_archive.demo")

DIRECTORY_PREFIX = "chat-archive-demo-"
OWNER_FILE = "owner.pid"
SERVER_FILE = "server.pid"


def remove_left_behind(parent: Path) -> list[Path]:
    """Stop the Prosody and remove the directory of every demo in ``parent`` whose owner is gone.

    A demo whose owning process still runs (another `up --demo`) is left alone.
    Returns the directories removed.
    """
    removed = []
    for directory in sorted(parent.glob(DIRECTORY_PREFIX + "*")):
        owner = _pid_in(directory / OWNER_FILE)
        if owner is None or process_alive(owner):
            continue
        server = _pid_in(directory / SERVER_FILE)
        if server is not None and _runs_config_of(server, directory):
            _terminate(server)
        shutil.rmtree(directory, ignore_errors=True)
        log.info("demo: removed what a stopped demo (pid %d) left behind: %s", owner, directory)
        removed.append(directory)
    return removed


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _runs_config_of(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is still the Prosody of ``directory`` (a pid may have been reused)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(directory / "prosody.cfg.lua").encode() in command


def _terminate(pid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not process_alive(pid) or _zombie(pid):
                return
            time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False
