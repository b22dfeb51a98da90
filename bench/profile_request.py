"""Profile API requests end to end inside one process: WSGI app, auth, query, index, encoding.

    python -m bench.profile_request --size 1m --kind search --requests 3000

Builds (untimed, once) the corpus's store, views and index in the bench workdir,
builds the app exactly as `chat-archive serve` does (``api_root.build_api``), then
runs the requests through the WSGI interface under cProfile and prints where the
time goes (the HTTP server's own share is what wrk adds on top: see ``bench.api``).

A search runs in the app's deadline pool, a thread cProfile does not see (its time
shows as a lock's ``acquire``); ``--search-inline`` runs it in the request's thread
so that its parts are profiled too (the pool's hand-over is then not measured).
``--store PostgreSQL`` profiles the app over the bench's PostgreSQL store (its views, its
audit trail's commits), whose time per request is mostly waits on round trips.
Wall and CPU time per request are printed without the profiler first.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from archive.application import open_event_store
from chat_archive.api_root import build_api, open_tokens
from query_api.context import EXTENSION
from query_api.roles import Role

from .api import ensure_views_and_index
from .corpus import SIZES, START, CorpusSpec, query_set, room_jid
from .setup import bench_config
from .stages import index_dir, store_url


def paths(spec: CorpusSpec, kind: str) -> list[str]:
    if kind == "transcript":
        days = max(1, int(spec.events * 3 / 86400))
        return [
            f"/api/v1/rooms/{quote(room_jid(i % min(spec.rooms, 20)))}/transcript?day="
            f"{(START + timedelta(days=i % days)).date().isoformat()}&limit=50"
            for i in range(200)
        ]
    texts = [t for ts in query_set(spec).classes.values() for t in ts]
    return [f"/api/v1/search?q={quote(t)}&limit=20" for t in texts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_request", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="100k")
    parser.add_argument("--kind", choices=["search", "transcript", "healthz"], default="search")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/chat-archive-bench"))
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--search-inline", action="store_true", help="profile searches in the request's thread")
    parser.add_argument("--store", choices=["SQLite", "PostgreSQL"], default="SQLite",
                        help="the store the app reads and records its audit trail in (as the bench's api stage)")
    args = parser.parse_args(argv)
    workdir = args.workdir / args.size
    # The same spec as `python -m bench` uses for this workdir: its marker names the store built from it.
    spec = dataclasses.replace(CorpusSpec.for_size(args.size, 42), cache=str(workdir))
    ctx: dict = {"store": args.store}
    url = store_url(spec, workdir, ctx)
    config = bench_config(workdir, store_url=url, index=index_dir(workdir, args.store))
    twin = index_dir(workdir, "SQLite") if args.store == "PostgreSQL" else None
    ensure_views_and_index(config, args.store, None, twin=twin, events=spec.events)
    tokens = open_tokens(config)
    token = tokens.create(Role.COMPLIANCE, label="profile")[0]
    tokens.close()
    with open_event_store(url) as store:
        app = build_api(config, store)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        urls = ["/healthz"] if args.kind == "healthz" else paths(spec, args.kind)
        for url in urls[:50]:  # warm caches and the index reader
            assert client.get(url, headers=headers).status_code == 200, url
        began, cpu = time.perf_counter(), time.process_time()
        for i in range(args.requests):
            client.get(urls[i % len(urls)], headers=headers).close()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        print(f"{args.requests} {args.kind} requests without the profiler: {1000 * wall / args.requests:.3f} ms wall, "
              f"{1000 * cpu / args.requests:.3f} ms CPU (all threads) each; load {_load()}")
        if args.search_inline:
            app.extensions[EXTENSION].searches.run = lambda work, seconds: work()
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for i in range(args.requests):
            client.get(urls[i % len(urls)], headers=headers).close()
        profiler.disable()
        elapsed = time.perf_counter() - began
    print(f"{args.requests} {args.kind} requests in {elapsed:.2f} s: {1000 * elapsed / args.requests:.3f} ms each "
          f"(under the profiler), {args.requests / elapsed:.0f}/s in one thread")  # fmt: skip
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
        print(out.getvalue())
    return 0


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    raise SystemExit(main())
