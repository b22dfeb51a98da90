"""End-to-end freshness through a real Prosody, and the listener's sustained archive rate.

A real `chat-archive up` (listener, projections, indexer, API in one process)
archives a room of a local Prosody into a fresh store. A probe client says a
message with a unique word, then polls the search API until a search finds it:
freshness = send -> found. Baseline: send -> the room reflecting the message
back to the sender (Prosody's own delivery). Measured at idle, then while a
separate process floods the room (bench/flood.py), whose observer client
counts what Prosody delivers to one client: the ceiling for the listener,
which is one client too. The listener's rate is the growth of the store's
log's growth during the flood; "kept up" means that 3 s after the flood the
archive held (99% of) what Prosody had delivered to the observer by then. Each
store kind gets a fresh store of its own (a PostgreSQL one in its own schema).
"""

from __future__ import annotations

import http.client
import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from archive.application import open_event_store
from chat_archive.prosody import ProsodyServer
from chat_archive.xmpp_users import XmppUsers

from .api import _free_port
from .append import pg_schema, pg_url, reset_pg_schema
from .corpus import CorpusSpec
from .files import open_new, write
from .flood import command as flood_command
from .measure import Figure, Results, peak_rss_of, percentile
from .setup import bench_config, config_toml

IDLE_PROBES = 40
FLOOD_SECONDS = 20
SENDERS = 4


def run_freshness(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    kind = ctx["store"]
    base = workdir / f"freshness-{kind.lower()}"
    if base.exists():
        subprocess.run(["rm", "-rf", str(base)], check=True)
    base.mkdir(parents=True)
    store_url = f"sqlite:///{base / 'events.sqlite'}"
    if kind == "PostgreSQL":
        reset_pg_schema(pg_schema(base, "freshness"))
        store_url = pg_url(pg_schema(base, "freshness"))
    server = ProsodyServer(base / "prosody", admins=("archiver@localhost",))
    password = secrets.token_urlsafe(12)
    names = ["archiver", "probe", "observer", *[f"sender{i}" for i in range(SENDERS)]]
    for name in names:
        server.register(name, password)
    server.start()
    room = f"bench@{server.muc_service}"
    up = flood = None
    try:
        with XmppUsers("127.0.0.1", server.port, timeout=30) as users:
            probe = users.connect(f"probe@{server.domain}", password)
            probe.create_room(room, "probe")
            port = _free_port()
            config = bench_config(base, port=port, store_url=store_url, extra={"xmpp": {
                "jid": f"archiver@{server.domain}", "password": password, "host": "127.0.0.1",
                "port": server.port, "tls": False, "muc_services": [server.muc_service],
                "status_file": str(base / "listener-status.json")}})
            write(base / "chat-archive.toml", config_toml(config))
            cli = [sys.executable, "-m", "chat_archive.cli", "--config", str(base / "chat-archive.toml")]
            token = subprocess.run([*cli, "token", "create", "--role", "compliance"], check=True,
                                   capture_output=True, text=True).stdout.strip().splitlines()[-1]
            with open_new(base / "up.log") as log:
                up = subprocess.Popen([*cli, "up"], stdout=log, stderr=subprocess.STDOUT)
            api = _Api(port, token)
            api.wait_ready(up)
            # The listener is in the room once a message said now gets archived and indexed.
            if _probe(probe, room, api, timeout=60) is None:
                raise RuntimeError(f"the listener never archived a probe: {(base / 'up.log').read_text()[-800:]}")

            idle = [_probe(probe, room, api) for _ in range(IDLE_PROBES)]
            _add_latency(results, f"idle, {kind}", idle)

            with open_new(base / "flood.log") as flood_log:
                flood = subprocess.Popen(
                    flood_command(server.port, password, room, server.domain, SENDERS, FLOOD_SECONDS),
                    stdout=subprocess.PIPE, stderr=flood_log, text=True)
            if flood.stdout.readline().strip() != "ready":
                flood.kill()
                # A run that failed here once said only this: keep the flood's own words.
                raise RuntimeError(f"flood clients did not start (exit {flood.wait()}): "
                                   f"{(base / 'flood.log').read_text()[-800:]}")
            sampler = _Sampler(store_url)
            t_start = time.monotonic()
            flooded = []
            while time.monotonic() - t_start < FLOOD_SECONDS:
                flooded.append(_probe(probe, room, api, timeout=30))
            t_end = time.monotonic()
            report = json.loads(flood.stdout.readline())
            t_report = time.monotonic()  # the observer's total was counted just before this
            flood.wait(60)
            time.sleep(1)
            sampler.stop()
            during = sampler.count_at(t_end) - sampler.count_at(t_start)
            archived = sampler.count_at(t_report) - sampler.count_at(t_start) - len(flooded)
            _add_latency(results, f"under flood, {kind}", flooded)
            prosody_rate = report["received_during"] / report["seconds"]
            listener_rate = during / (t_end - t_start)
            results.add(Figure(
                "listener", f"sustained archive rate while 4 clients flood one room, {kind}", listener_rate, "messages/s",
                prosody_rate, "Prosody's delivery rate to one client (observer)", aim=">= Prosody's rate",
                note=(f"the flooders queued {report['sent']:,} messages in {report['seconds']:.0f} s; 3 s after the "
                      f"flood Prosody had delivered {report['received_total']:,} to the observer and the archive "
                      f"held {archived:,} ({'kept up' if archived >= 0.99 * report['received_total'] else 'behind'})")))
            results.rss[f"chat-archive up (listener, projections, indexer, API), {kind}"] = peak_rss_of(up.pid) or 0
            results.rss["prosody"] = peak_rss_of(server.process.pid) or 0
    finally:
        if flood is not None:
            flood.kill()
            flood.wait()
            flood.stdout.close()
        if up is not None:
            up.terminate()
            try:
                up.wait(30)
            except subprocess.TimeoutExpired:
                up.kill()
        server.stop()


class _Api:
    def __init__(self, port: int, token: str):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def wait_ready(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("chat-archive up exited")
            try:
                self.total("x")
                return
            except (OSError, http.client.HTTPException):
                self.conn.close()
                time.sleep(0.2)
        raise RuntimeError("chat-archive up: API not ready within 60 s")

    def total(self, word: str) -> int:
        self.conn.request("GET", f"/api/v1/search?q={quote(word)}&limit=1",
                          headers={"Authorization": f"Bearer {self.token}"})
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"search: HTTP {response.status}: {body[:200]!r}")
        return json.loads(body)["total"]


def _probe(probe, room: str, api: _Api, timeout: float = 10.0) -> tuple[float, float] | None:
    """(send -> found by search, send -> reflected by the room) in seconds; None if never found."""
    word = "probe" + secrets.token_hex(6)
    t0 = time.perf_counter()
    probe.say(room, f"{word} is a fresh message")
    reflected = time.perf_counter() - t0
    while time.perf_counter() - t0 < timeout:
        if api.total(word) >= 1:
            return time.perf_counter() - t0, reflected
        time.sleep(0.005)
    return None


def _add_latency(results: Results, label: str, samples: list) -> None:
    found = [s for s in samples if s is not None]
    missing = len(samples) - len(found)
    fresh = [s[0] for s in found]
    delivered = [s[1] for s in found]
    for p in (50, 99):
        results.add(Figure("freshness", f"{label}: client sends -> search API returns it, p{p}",
                           percentile(fresh, p) * 1000, "ms", percentile(delivered, p) * 1000,
                           "client sends -> room reflects it (Prosody)", higher_is_better=False,
                           aim="p99 < 1 s at idle" if p == 99 and label.startswith("idle") else "",
                           note=f"{len(found)} probes" + (f", {missing} not found within the timeout" if missing else "")
                           if p == 50 else ""))


class _Sampler:
    """Reads the store's head every 0.1 s in a thread: (monotonic time, events in the log) samples. During
    the flood every event is a message (the flooders joined before it)."""

    def __init__(self, store_url: str):
        self.store = open_event_store(store_url)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.store.head()))
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.store.close()

    def count_at(self, t: float) -> int:
        """The last count sampled at or before ``t``."""
        return max((c for s, c in self.samples if s <= t), default=self.samples[0][1])
