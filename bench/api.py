"""The query API under load from a separate process (wrk) against a real `chat-archive serve`.

Search and transcript requests/s and latency p50/p99, beside `/healthz` under the
same load (the ceiling of the server and framework on this machine). Replay:
NDJSON events/s streamed by `GET /api/v1/events`, beside the in-process rate of
reading and encoding the same events (the ceiling of the endpoint).
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from archive.application import open_event_store
from archive.codec import to_json
from archive.errors import StoreError
from chat_archive.bootstrap import open_search_index, open_views, search_projection
from projections.rebuild import rebuild

from .corpus import START, CorpusSpec, query_set, room_jid
from .files import open_new, write
from .measure import Figure, Results, Stopwatch, peak_rss_of
from .setup import bench_config, config_toml
from .stages import index_dir, store_url

DURATION = 10
CONNECTIONS = 16
REPLAY_AT_MOST = 1_000_000  # events: the log's last ones, so that the rate compares across sizes


WORKERS = (1, 2)  # `serve --workers N`: gunicorn processes behind one port


def run_api(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    search_paths, transcript_paths = api_paths(spec)
    loads = (("search", search_paths, ">= 500/s, p99 < 50 ms"), ("transcript (a room's day, 50 lines)", transcript_paths, ""))
    kind = ctx["store"]
    for workers in WORKERS:
        with Server(spec, workdir, ctx, workers=workers, results=results) as server:
            base = _wrk(server, ["/healthz"], f"healthz-w{workers}")
            for label, paths, aim in loads:
                got = _wrk(server, paths, f"{label.split()[0]}-w{workers}")
                name = f"{label}, {workers} worker{'s' if workers > 1 else ''}, {kind}"
                results.add(Figure("api", f"{name}: requests/s answered (2xx)", got["rps"], "req/s", base["rps"],
                                   "/healthz under the same load", aim=aim.split(",")[0] if aim else "",
                                   note=f"wrk {CONNECTIONS} connections, {DURATION} s, errors {got['errors']}"))
                for p in ("p50", "p99"):
                    results.add(Figure("api", f"{name}: {p}", got[p], "ms", base[p], "/healthz under the same load",
                                       higher_is_better=False, aim="p99 < 50 ms" if p == "p99" and aim else ""))
            results.rss[f"chat-archive serve --workers {workers} (master + workers, after the load)"] = (
                sum(peak_rss_of(pid) or 0 for pid in server.pids()))
    if not ctx.get("light"):  # a ratio of two servers on one store: the 1M run's holds at 10M
        audit_cost(spec, workdir, results, ctx, loads)


AUDIT_ROUNDS = 3
AUDIT_ROUND_SECONDS = 5


def audit_cost(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict, loads) -> None:
    """Each load against one worker with and one without its audit hook, both up at once and loaded in
    turn, short rounds alternating: the machine's load drifts between rounds, not between the two."""
    with Server(spec, workdir, ctx, workers=1) as audited, \
            Server(spec, workdir, ctx, module="bench.unaudited", workers=1, name="unaudited") as plain:
        for label, paths, _ in loads:
            rates: dict[str, list[float]] = {"audited": [], "plain": []}
            for round_ in range(AUDIT_ROUNDS):
                for name, server in (("audited", audited), ("plain", plain)):
                    got = _wrk(server, paths, f"{label.split()[0]}-{name}-{round_}", duration=AUDIT_ROUND_SECONDS)
                    rates[name].append(got["rps"])
            results.add(Figure("api", f"{label}, 1 worker, {ctx['store']}: requests/s with the audit trail vs without",
                               statistics.median(rates["audited"]), "req/s", statistics.median(rates["plain"]),
                               "the same server without its audit hook, loaded in turn with it",
                               aim="ratio >= 0.8",
                               note=f"medians of {AUDIT_ROUNDS} alternating {AUDIT_ROUND_SECONDS} s rounds; "
                                    "one chained audit record per request, concurrent ones sharing commits"))


def api_paths(spec: CorpusSpec) -> tuple[list[str], list[str]]:
    """The search requests (every query class; no facets: the API counts them only when asked)
    and the transcript pages (a room's day, 50 lines) the load cycles through."""
    queries = query_set(spec)
    search_paths = []
    for name, texts in queries.classes.items():
        for text in texts:
            q = f"room:{queries.room} {text}" if name == "room filter + word" else text
            search_paths.append(f"/api/v1/search?q={quote(q)}&limit=20")
    search_paths += [f"/api/v1/search?q={quote(t)}&limit=20&sort=newest" for t in queries.classes["common word"]]
    days = max(1, int(spec.events * 3 / 86400))
    transcript_paths = [
        f"/api/v1/rooms/{quote(room_jid(i % min(spec.rooms, 20)))}/transcript?day="
        f"{(START + timedelta(days=i % days)).date().isoformat()}&limit=50"
        for i in range(200)
    ]
    return search_paths, transcript_paths


def run_replay(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    with Server(spec, workdir, ctx, results=results) as server:
        with open_event_store(server.store_url) as store:
            after = max(0, store.head() - REPLAY_AT_MOST)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        watch = Stopwatch()
        n = 0
        with watch:
            conn.request("GET", f"/api/v1/events?after={after}", headers={"Authorization": f"Bearer {server.token}"})
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"replay: HTTP {response.status}: {response.read(300)!r}")
            while chunk := response.read(1 << 20):
                n += chunk.count(b"\n")
        conn.close()
        results.rss["chat-archive serve (after the replay)"] = peak_rss_of(server.proc.pid) or 0
    ceiling = Stopwatch()
    m = 0
    with open_event_store(server.store_url) as store, ceiling:
        for record in store.read_log(after):
            to_json(record.event)
            m += 1
    results.add(Figure("replay", f"GET /api/v1/events (NDJSON) events/s, {ctx['store']}", n / watch.elapsed,
                       "events/s", m / ceiling.elapsed, "in-process read_log + JSON encode",
                       note=f"the log's last {n:,} events"))


class Server:
    """`chat-archive serve` in a subprocess over the workdir's store of the stage's kind, its views and index."""

    def __init__(self, spec: CorpusSpec, workdir: Path, ctx: dict, module: str = "chat_archive.cli", workers: int = 0,
                 name: str = "serve", results: Results | None = None):
        self.spec, self.workdir, self.ctx, self.module, self.workers = spec, workdir, ctx, module, workers
        self.name, self.results = name, results

    def __enter__(self) -> Server:
        self.store_url = store_url(self.spec, self.workdir, self.ctx)
        self.port = _free_port()
        config = bench_config(self.workdir, port=self.port, store_url=self.store_url,
                              index=index_dir(self.workdir, self.ctx["store"]))
        twin = index_dir(self.workdir, "SQLite") if self.ctx["store"] == "PostgreSQL" else None
        ensure_views_and_index(config, self.ctx["store"], self.results, twin=twin, events=self.spec.events)
        config_file = self.workdir / f"{self.name}.toml"
        write(config_file, config_toml(config))
        cli = [sys.executable, "-m", "chat_archive.cli", "--config", str(config_file)]
        self.token = subprocess.run([*cli, "token", "create", "--role", "compliance", "--label", "bench"],
                                    check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        self.log = open_new(self.workdir / f"{self.name}.log")
        workers = ["--workers", str(self.workers)] if self.workers else []
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, *cli[3:], "serve", *workers], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every worker answering, not only the port bound
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(self.workdir / f'{self.name}.log').read_text()[-500:]}")
            if len(self.pids()) > self.workers and all(_healthy(self.port) for _ in range(4)):
                return self
            time.sleep(0.2)
        raise RuntimeError("serve did not answer within 60 s")

    def pids(self) -> list[int]:
        """The server process and its workers (gunicorn's are its children)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [self.proc.pid, *map(int, children.read_text().split())]
        except OSError:
            return [self.proc.pid]

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def ensure_views_and_index(config, kind: str, results: Results | None, *, twin: Path | None = None,
                           events: int = 0) -> None:
    """The views and search index of the store, rebuilt unless earlier stages built them up to its head.

    The views are untimed (the projections stage times them). The index: a copy of ``twin`` (the SQLite
    store's) when both logs hold the corpus, and nothing else, at positions 1..``events`` (the same log:
    a rebuild from PostgreSQL would make the same index, minutes later at 10M); else rebuilt here, its
    rate a figure beside none (FTS5's is SQLite's).
    """
    with open_event_store(config.store.url) as store:
        head = store.head()
        views = open_views(config, store)
        try:
            try:
                stale = any(target.position() != head for target in views.projections(["transcripts", "presence"]))
            except StoreError:  # views of an earlier layout, which the projections refuse: rebuilt
                stale = True
            if stale:
                print(f"  building the views, {kind} (untimed)", flush=True)
                rebuild(store, views.projections(["transcripts", "presence"], load=False))
        finally:
            views.close()
        index = Path(config.index.path)
        if _index_position(index) == head:
            return
        if twin is not None and head == events and _index_position(twin) == head:
            print(f"  the {kind} log is the SQLite store's: its search index copied", flush=True)
            shutil.rmtree(index, ignore_errors=True)
            shutil.copytree(twin, index, symlinks=True)
            return
        print(f"  building the search index from the {kind} log", flush=True)
        report = rebuild(store, [search_projection(config)], progress=False)
        if results is not None:
            results.add(Figure("search", f"index rebuild from the {kind} log (for the API), events/s",
                               report.events_per_second, "events/s",
                               note=f"{report.events:,} events in {report.seconds:.1f} s"))


def _index_position(path: Path) -> int | None:
    """The position of the index at ``path``, or None where there is none or it is of an earlier schema, which
    searches refuse (a workdir kept from a run before the schema changed): rebuilt then."""
    try:
        return open_search_index(bench_config(path.parent, index=path)).position() if path.exists() else None
    except StoreError:
        return None


def _healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LUA = """
paths = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], {["Authorization"] = "Bearer %s"})
end
"""


def _wrk(server: Server, paths: list[str], label: str, duration: int = DURATION) -> dict:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (./dev installs it)")
    script = server.workdir / f"wrk-{label}.lua"
    write(script, _LUA % (", ".join(f'"{p}"' for p in paths), server.token))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{server.port}"], check=True, capture_output=True, text=True, timeout=duration + 60,
    ).stdout
    write(server.workdir / f"wrk-{label}.txt", out)
    # Only answered requests count: a 503 (a search past its deadline) is not a search served.
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    answered = int(done.group(1)) - (int(refused.group(1)) if refused else 0)
    return {"rps": answered / (_ms(done.group(2) + done.group(3)) / 1000),
            "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
            "errors": _errors(out)}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _errors(out: str) -> str:
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:(.*)", out)
    parts = []
    if non2xx:
        parts.append(f"{non2xx.group(1)} non-2xx")
    if socket_errors:
        parts.append(socket_errors.group(1).strip())
    return ", ".join(parts) or "none"

