"""Index rate and search latency by query class, vs SQLite FTS5 on the same corpus and queries.

Both sides do the same work for the index: read the log from the store, decode,
and index every message (FTS5: an external-content-less table of body plus
unindexed room, nick and time). Queries: chat-archive's whole search path
(query language, scope clause, snippets, total) as the API runs it by default
(no facets; a newest-first page's total a lower bound where its window stopped the
count, as the API gives it unless asked for ``exact_total``), limit 20, once more with
facets by room and sender, and newest first with the exact total; FTS5:
``MATCH`` ordered by bm25 (or rowid, newest first) with ``snippet()``, limit
20. FTS5 counts no totals and no facets: it does less. Each timed sample is its query's first
search on the index's commit: nothing an earlier search of it left (a known total, its hits' lines)
is reused, as FTS5 reuses nothing but the page cache.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from archive.application import open_event_store
from archive.events import MessagePosted, Recorded
from chat_archive.bootstrap import open_search_index, search_projection
from projections.follower import collection_paused
from projections.rebuild import rebuild
from projections.search import Scope

from .corpus import CorpusSpec, generate, query_set
from .measure import Figure, Results, Stopwatch, batched, dir_bytes, percentile
from .stages import ensure_store
from .setup import bench_config

LIMIT = 20
PASSES = 5


def run_search(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    config = bench_config(workdir)
    light = ctx.get("light") and not ctx.get("search_from_corpus")
    shutil.rmtree(workdir / "index", ignore_errors=True)
    fts_path = workdir / "fts5.sqlite"
    if ctx.get("search_from_corpus"):
        events, seconds, messages, fts_rate = build_from_corpus(spec, config, fts_path)
        how, source = "index build from the generated event stream (no log read)", "SQLite FTS5 fed the same stream"
    else:
        with open_event_store(ensure_store(spec, workdir, ctx)) as store:
            report = rebuild(store, [search_projection(config)], progress=False)
            # light (10M): no FTS5 (minutes to build and query at 10M); its ratios are the 1M run's
            fts_rate, messages = build_fts5(store, fts_path) if not light else (None, _messages(store, ctx))
        events, seconds = report.events, report.seconds
        how, source = "index rebuild (tantivy projection, reading the log)", "SQLite FTS5 build from the same log read"
    index_bytes = dir_bytes(workdir / "index")
    msg_rate = messages / seconds
    results.add(Figure("search", f"{how}, messages/s", msg_rate, "messages/s", fts_rate, source,
                       aim=">= 120,000 messages/s", note=f"{events:,} events, {messages:,} messages in {seconds:.1f} s"))
    results.add(Figure("disk", "search index, bytes per message", index_bytes / messages, "B",
                       dir_bytes_of(fts_path) / messages if not light else None, "FTS5 table with content",
                       higher_is_better=False))
    views = sum(p.stat().st_size for p in workdir.glob("views.sqlite*"))
    raw_file = workdir / "raw-bytes.txt"
    if views and raw_file.exists():
        store = sum(p.stat().st_size for p in workdir.glob("events.sqlite*"))
        results.add(Figure("disk", "store + views + index, bytes per message", (store + views + index_bytes) / messages,
                           "B", int(raw_file.read_text()) / messages, "raw table of the encoded events",
                           higher_is_better=False, note=f"{messages:,} messages among {events:,} events"))

    queries = query_set(spec)
    index = open_search_index(config)

    def first_on_commit() -> None:
        # Each sample is its query's first search on the commit, as after a commit under live traffic (about
        # one a second): not a repeat that reuses the total (time sorts) or the hits' lines (every sort) its
        # earlier searches left on this searcher, where FTS5 does the whole work again.
        index.forget_known_totals()
        index.forget_kept_lines()

    fts = sqlite3.connect(fts_path) if not light else None
    if fts:
        fts.execute("PRAGMA cache_size=-65536")
    classes = dict(queries.classes)
    classes["newest first"] = queries.classes["common word"]
    all_ours: list[float] = []
    all_fts: list[float] = []
    fts_by_class: dict[str, list[float]] = {}
    for name, texts in classes.items():
        ours = _latencies(lambda q: _ours(index, name, q, queries.room), texts, before=first_on_commit)
        theirs = fts_by_class[name] = _latencies(lambda q: _fts(fts, name, q, queries.room), texts) if fts else []
        hits = _ours(index, name, texts[0], queries.room, exact_total=True).total
        all_ours += ours
        all_fts += theirs
        for p in (50, 99):
            results.add(Figure("search", f"{name}: p{p}", percentile(ours, p) * 1000, "ms",
                               _ms(percentile(theirs, p)), "FTS5 bm25 + snippet", higher_is_better=False,
                               aim="at or under FTS5" if p == 50 else "p99 < 20 ms",
                               note=f"e.g. {texts[0]!r}: {hits:,} hits" if p == 50 else ""))
    for p in (50, 99):
        results.add(Figure("search", f"all classes: p{p}", percentile(all_ours, p) * 1000, "ms",
                           _ms(percentile(all_fts, p)), "FTS5 bm25 + snippet", higher_is_better=False,
                           aim="p50 < 1 ms" if p == 50 else "p99 < 20 ms"))
    faceted = _latencies(lambda q: _ours(index, "common word", q, queries.room, facets=True), classes["common word"],
                         before=first_on_commit)
    results.add(Figure("search", "common word with facets by room and sender (facets=true): p50",
                       percentile(faceted, 50) * 1000, "ms", _ms(percentile(fts_by_class["common word"], 50)),
                       "FTS5 common word (no facets)", higher_is_better=False))
    exact = _latencies(lambda q: _ours(index, "newest first", q, queries.room, exact_total=True),
                       classes["newest first"], before=first_on_commit)
    results.add(Figure("search", "newest first with the exact total (exact_total=true): p50",
                       percentile(exact, 50) * 1000, "ms", _ms(percentile(fts_by_class["newest first"], 50)),
                       "FTS5 newest first (counts nothing)", higher_is_better=False))
    if fts:
        fts.close()
        fts_path.unlink()


def _ms(seconds: float) -> float | None:
    return None if seconds != seconds else seconds * 1000  # NaN: no baseline samples (light)


def _messages(store, ctx: dict) -> int:
    """Messages in the log: the append stage's count, else counted."""
    return ctx.get("messages") or sum(1 for r in store.read_log(0, page_size=2000) if type(r.event) is MessagePosted)


def dir_bytes_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def build_fts5(store, path: Path) -> tuple[float, int]:
    db = _fts_db(path)
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


def build_from_corpus(spec: CorpusSpec, config, fts_path: Path) -> tuple[int, float, int, float]:
    """Index the generated corpus straight from the generator (for sizes whose store would take
    too long to build here): the index projection's own apply/commit every 100,000 events, then
    swapped in, and FTS5 fed the same batches. Returns (events, index seconds, messages, FTS5 rate)."""
    target = search_projection(config)
    fresh = target.begin_rebuild()
    db = _fts_db(fts_path)
    ours, theirs = Stopwatch(), Stopwatch()
    position = messages = 0
    for batch in batched(generate(spec), 2000):
        records = [Recorded(position + i + 1, e) for i, e in enumerate(batch)]
        position += len(batch)
        with ours, collection_paused():  # as a follower applies and commits its pages
            fresh.apply(records)
            if position % 100_000 == 0:
                fresh.commit(position)
        rows = [(r.position, r.event.body, r.event.room, r.event.nick, r.event.occurred_at.timestamp())
                for r in records if type(r.event) is MessagePosted]
        with theirs:
            messages += _fts_insert(db, rows)
    with ours, collection_paused():
        fresh.commit(position)
        target.finish_rebuild(fresh)
    db.close()
    return position, ours.elapsed, messages, messages / theirs.elapsed


def _fts_db(path: Path):
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE VIRTUAL TABLE m USING fts5(body, room UNINDEXED, nick UNINDEXED, ts UNINDEXED)")
    return db


def _fts_insert(db, rows) -> int:
    db.execute("BEGIN")
    db.executemany("INSERT INTO m (rowid, body, room, nick, ts) VALUES (?,?,?,?,?)", rows)
    db.execute("COMMIT")
    return len(rows)


def _latencies(run, texts: list[str], before=None) -> list[float]:
    """Seconds per ``run(text)``, every text ``PASSES`` times after a warm-up; ``before()``, when
    given, runs untimed ahead of each sample."""
    for text in texts:  # warm-up pass
        run(text)
    samples = []
    for _ in range(PASSES):
        for text in texts:
            if before:
                before()
            t = time.perf_counter()
            run(text)
            samples.append(time.perf_counter() - t)
    return samples


def _ours(index, name: str, text: str, room: str, *, facets: bool = False, exact_total: bool = False):
    if name == "room filter + word":
        text = f"room:{room} {text}"
    sort = "newest" if name == "newest first" else "relevance"
    return index.search(text, Scope(rooms=None, compliance=False), sort=sort, limit=LIMIT, facets=facets,
                        exact_total=exact_total)


def _fts(db, name: str, text: str, room: str):
    match = text if text.startswith('"') else " AND ".join(text.split())
    snippet = "snippet(m, 0, '<mark>', '</mark>', '…', 12)"
    if name == "room filter + word":
        sql = f"SELECT rowid, room, nick, ts, {snippet} FROM m WHERE m MATCH ? AND room = ? ORDER BY rank LIMIT ?"
        return db.execute(sql, (match, room, LIMIT)).fetchall()
    order = "rowid DESC" if name == "newest first" else "rank"
    sql = f"SELECT rowid, room, nick, ts, {snippet} FROM m WHERE m MATCH ? ORDER BY {order} LIMIT ?"
    return db.execute(sql, (match, LIMIT)).fetchall()
