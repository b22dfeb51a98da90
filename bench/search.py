"""Index rate and search latency by query class, vs SQLite FTS5 on the same corpus and queries.

Both sides do the same work for the index: read the log from the store, decode,
and index every message (FTS5: an external-content-less table of body plus
unindexed room, nick and time). Queries: chat-archive's whole search path
(query language, scope clause, snippets, total, facets by room and sender),
limit 20; FTS5: ``MATCH`` ordered by bm25 (or rowid, newest first) with
``snippet()``, limit 20. FTS5 counts no totals and no facets: it does less.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from archive.application import open_event_store
from archive.events import MessagePosted
from chat_archive.bootstrap import open_search_index, search_projection
from projections.rebuild import rebuild
from projections.search import Scope

from .corpus import CorpusSpec, query_set
from .measure import Figure, Results, Stopwatch, dir_bytes, percentile
from .stages import ensure_store
from .setup import bench_config

LIMIT = 20
PASSES = 5


def run_search(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    url = ensure_store(spec, workdir, ctx)
    config = bench_config(workdir)
    shutil.rmtree(workdir / "index", ignore_errors=True)
    with open_event_store(url) as store:
        report = rebuild(store, [search_projection(config)], progress=False)
        fts_path = workdir / "fts5.sqlite"
        fts_rate, messages = build_fts5(store, fts_path)
    index_bytes = dir_bytes(workdir / "index")
    msg_rate = messages / report.seconds
    results.add(Figure("search", "index rebuild (tantivy projection), messages/s", msg_rate, "messages/s",
                       fts_rate, "SQLite FTS5 build from the same log read", aim=">= 80,000 messages/s",
                       note=f"{report.events:,} events, {messages:,} messages in {report.seconds:.1f} s"))
    results.add(Figure("disk", "search index, bytes per message", index_bytes / messages, "B",
                       dir_bytes_of(fts_path) / messages, "FTS5 table with content", higher_is_better=False))
    views = sum(p.stat().st_size for p in workdir.glob("views.sqlite*"))
    raw_file = workdir / "raw-bytes.txt"
    if views and raw_file.exists():
        store = sum(p.stat().st_size for p in workdir.glob("events.sqlite*"))
        results.add(Figure("disk", "store + views + index, bytes per message", (store + views + index_bytes) / messages,
                           "B", int(raw_file.read_text()) / messages, "raw table of the encoded events",
                           higher_is_better=False, note=f"{messages:,} messages among {report.events:,} events"))

    queries = query_set(spec)
    index = open_search_index(config)
    fts = sqlite3.connect(fts_path)
    fts.execute("PRAGMA cache_size=-65536")
    classes = dict(queries.classes)
    classes["newest first"] = queries.classes["common word"]
    all_ours: list[float] = []
    all_fts: list[float] = []
    for name, texts in classes.items():
        ours = _latencies(lambda q: _ours(index, name, q, queries.room), texts)
        theirs = _latencies(lambda q: _fts(fts, name, q, queries.room), texts)
        hits = _ours(index, name, texts[0], queries.room).total
        all_ours += ours
        all_fts += theirs
        for p in (50, 99):
            results.add(Figure("search", f"{name}: p{p}", percentile(ours, p) * 1000, "ms",
                               percentile(theirs, p) * 1000, "FTS5 bm25 + snippet", higher_is_better=False,
                               aim="p50 < 2 ms" if p == 50 else "p99 < 20 ms",
                               note=f"e.g. {texts[0]!r}: {hits:,} hits" if p == 50 else ""))
    for p in (50, 99):
        results.add(Figure("search", f"all classes: p{p}", percentile(all_ours, p) * 1000, "ms",
                           percentile(all_fts, p) * 1000, "FTS5 bm25 + snippet", higher_is_better=False,
                           aim="p50 < 2 ms" if p == 50 else "p99 < 20 ms"))
    fts.close()
    fts_path.unlink()


def dir_bytes_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def build_fts5(store, path: Path) -> tuple[float, int]:
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE VIRTUAL TABLE m USING fts5(body, room UNINDEXED, nick UNINDEXED, ts UNINDEXED)")
    watch = Stopwatch()
    n = 0
    with watch:
        batch = []
        for record in store.read_log(0, page_size=2000):
            event = record.event
            if type(event) is MessagePosted:
                batch.append((record.position, event.body, event.room, event.nick, event.occurred_at.timestamp()))
                if len(batch) == 10_000:
                    n += _fts_insert(db, batch)
                    batch = []
        n += _fts_insert(db, batch)
    db.close()
    return n / watch.elapsed, n


def _fts_insert(db, rows) -> int:
    db.execute("BEGIN")
    db.executemany("INSERT INTO m (rowid, body, room, nick, ts) VALUES (?,?,?,?,?)", rows)
    db.execute("COMMIT")
    return len(rows)


def _latencies(run, texts: list[str]) -> list[float]:
    for text in texts:  # warm-up pass
        run(text)
    samples = []
    for _ in range(PASSES):
        for text in texts:
            t = time.perf_counter()
            run(text)
            samples.append(time.perf_counter() - t)
    return samples


def _ours(index, name: str, text: str, room: str):
    if name == "room filter + word":
        text = f"room:{room} {text}"
    sort = "newest" if name == "newest first" else "relevance"
    return index.search(text, Scope(rooms=None, compliance=False), sort=sort, limit=LIMIT, facets=True)


def _fts(db, name: str, text: str, room: str):
    match = text if text.startswith('"') else " AND ".join(text.split())
    snippet = "snippet(m, 0, '<mark>', '</mark>', '…', 12)"
    if name == "room filter + word":
        sql = f"SELECT rowid, room, nick, ts, {snippet} FROM m WHERE m MATCH ? AND room = ? ORDER BY rank LIMIT ?"
        return db.execute(sql, (match, room, LIMIT)).fetchall()
    order = "rowid DESC" if name == "newest first" else "rank"
    sql = f"SELECT rowid, room, nick, ts, {snippet} FROM m WHERE m MATCH ? ORDER BY {order} LIMIT ?"
    return db.execute(sql, (match, LIMIT)).fetchall()
