"""Run the main job (``chat-archive up``: listener, projections, index, API and pages) as a
separate process for the browser tests, and stop it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services.prosody import LISTENER, PASSWORD

ROOT = Path(__file__).resolve().parents[3]
README_SCREENSHOTS = ROOT / "docs" / "screenshots"


def keep(shot, screenshot_dir: Path, name: str) -> Path:
    """A screenshot of ``shot`` (a WebDriver: the window; or an element) into the test's temp
    dir; with ``UPDATE_SCREENSHOTS=1`` also copied to docs/screenshots, which the README shows
    (opt-in, so that a test run does not change committed files)."""
    path = screenshot_dir / name
    (shot.save_screenshot if hasattr(shot, "save_screenshot") else shot.screenshot)(str(path))
    assert path.stat().st_size > 5000  # an image with content, not a blank frame
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS / name)
    return path


def toml(sections: dict[str, dict]) -> str:
    """A TOML file from plain values (strings, numbers, booleans, lists of strings)."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {value(v)}\n" for key, v in fields.items()) + "\n"
        for name, fields in sections.items()
    )


def listener_config(prosody, *, plain_rooms: bool = False) -> dict:
    """``[xmpp]`` for the server's listener on the test's Prosody (only its rooms; ``plain_rooms``: those of
    its MUC service without MAM too)."""
    services = [prosody.muc_service, *([prosody.plain_muc_service] if plain_rooms else [])]
    return {
        "jid": f"{LISTENER}@{prosody.domain}", "password": PASSWORD, "host": "127.0.0.1", "port": prosody.port,
        "tls": False, "muc_services": services, "include": [f"*@{service}" for service in services],
        "poll_interval": 0.3,
    }  # fmt: skip


class ServerProcess:
    """A ``chat-archive`` command (``up`` by default) with a config file of the test's own; ``start()``
    returns the URL it announces (port 0: a free one), or "" for a command that serves nothing."""

    def __init__(self, directory: Path, sections: dict[str, dict], command=("up", "--port", "0"), name: str = "server"):
        self.directory = directory
        self.command = list(command)
        self.config_file = directory / f"{name}.toml"
        self.config_file.write_text(toml(sections), encoding="utf-8")
        self.log_file = directory / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 30.0, *, serves: bool = True) -> str:
        log = open(self.log_file, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chat_archive.cli", "--config", str(self.config_file), *self.command],
            cwd=self.directory,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        if not serves:
            return ""
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            found = re.search(rb"(?:API and web pages on|listening on) (http://\S+)", line)
            if found:
                self.url = found.group(1).decode().rstrip("/")
                return self.url
            if not line and self.process.poll() is not None:
                break
        self.stop()
        pytest.fail(f"{self.command[0]} did not start: {line!r}\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)
