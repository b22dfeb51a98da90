"""`chat-archive serve` in a process of its own over a seeded archive, for tests that must see a
request take a real server down (or not)."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from archive.application import open_event_store
from chat_archive.api_root import open_tokens
from chat_archive.bootstrap import open_views, search_projection
from chat_archive.config import load_config
from projections.follower import LogFollower
from projections.search import SearchIndexer
from query_api.roles import Role

from .conftest import LOBBY, PUBLIC, seed_events


class Served(NamedTuple):
    url: str
    tokens: dict[str, str]
    process: subprocess.Popen
    config_file: Path
    config: object

    def request(self, method: str, path: str, *, token: str | None = None, user: str | None = None,
                body: bytes | None = None, headers: dict | None = None, timeout: float = 20):
        """(status, headers, body) of one request."""
        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        if user:
            sent["X-Chat-Archive-User"] = user
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=10) as response:
                return response.status == 200 and self.process.poll() is None
        except (OSError, urllib.error.URLError):
            return False

    def log(self) -> str:
        """What the server wrote to its stderr so far."""
        return (self.config_file.parent / "serve.log").read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_serve(
    base: Path, api_settings: str = "", *, heartbeat: float = 0.5, more_events=(), store_url: str | None = None,
    workers: int = 0,
) -> Served:
    """Seed an archive under ``base`` (in ``store_url``, else SQLite there) and serve it (``workers``:
    `serve --workers N`); ``more_events`` go into the log after the views and the index caught up (for
    replays); ``api_settings``: extra TOML lines of ``[api]``."""
    config_file = base / "chat-archive.toml"
    config_file.write_text(
        f'[store]\nurl = "{store_url or f"sqlite:///{base}/events.sqlite"}"\n[index]\npath = "{base}/index"\n'
        f'[api]\nanonymous_read = true\npublic_rooms = ["{PUBLIC}"]\nfollow_heartbeat = {heartbeat}\n{api_settings}\n'
    )
    config = load_config(config_file, environ={})
    store = open_event_store(config.store.url)
    store.append(seed_events())
    with open_views(config, store) as views:
        for projection in views.projections():
            LogFollower(store, projection, commit_interval=60).catch_up()
    projection = search_projection(config)
    SearchIndexer(store, projection, commit_interval=0.05).catch_up()
    projection.close()
    for batch in more_events:  # for replays: the views and the index need not hold them
        store.append(batch)
    store.close()
    tokens = open_tokens(config)
    issued = {
        "compliance": tokens.create(Role.COMPLIANCE)[0],
        "analyst": tokens.create(Role.ANALYST, (LOBBY,))[0],
        "site": tokens.create(Role.SITE, (LOBBY, PUBLIC))[0],
    }
    tokens.close()
    with open(base / "serve.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chat_archive.cli", "--config", str(config_file), "serve", "--port", "0",
             *(["--workers", str(workers)] if workers else [])],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=base,
        )  # fmt: skip
    line = process.stdout.readline()
    if "listening on http://127.0.0.1:" not in line:
        process.kill()
        raise AssertionError(line + (base / "serve.log").read_text())
    return Served(line.split("listening on ")[1].strip(), issued, process, config_file, config)


def wait_for(condition, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
