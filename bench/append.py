"""Append rate of the event store vs raw inserts of the same payloads, read rate, bytes per event.

One pass over the corpus feeds every sink batch by batch (interleaved), so that
the store and its raw baselines see the same payloads under the same machine
conditions, and the corpus is generated once however many sinks there are.
Only the sink's own call is timed; generating and (for the raw sinks) encoding
the batch are not.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from pathlib import Path

import msgspec
import psycopg

from archive.application import open_event_store
from archive.chain import STORED_LINK
from archive.codec import from_msgpack_array, idempotency_key, to_msgpack
from archive.events import Event, MessagePosted
from archive.idempotency import key_digest
from archive.store import MAX_BATCH
from projections.rebuild import PAGE_SIZE as REBUILD_PAGE

from .corpus import SIZES, CorpusSpec, generate
from .files import write
from .measure import Figure, Results, Stopwatch, batched
from .pgserver import DSN, activity, during

BATCH = MAX_BATCH  # what the writers hand the store under load (a backlog, an import, a migration)
# A pass longer than this also reports its sinks' rates over its first this many events (the smallest
# published size): how a rate changes with size, measured inside one pass with one mix of sinks. Passes
# of different sizes feed different sinks (light: fewer), and a sink's rate moves with the mix.
MARK = SIZES["1m"]
LIGHT_MIX = (
    "append (a light pass): the SQLite store alternates batch by batch with its one raw baseline (a plain table), "
    "the PostgreSQL store appends alone (a baseline's COPY into the same server bends the store's rate at the end "
    "of a 10M pass), while at 1m each alternates with four other sinks (SQLite; three on PostgreSQL), and a store's "
    "rate moves with the mix. The scale table's change of a store's append rate compares the two passes; in a pass longer than "
    f"{MARK:,} events the figures 'last {MARK:,} ... vs the first' and 'whole pass vs its first {MARK:,}' compare one "
    "pass with itself: the effect of size alone."
)


def pg_url(schema: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/postgres?schema={schema}"


def pg_schema(workdir: Path, role: str) -> str:
    """A schema per workdir and role: bench runs in other workdirs (someone else's) never share one."""
    return f"bench_{role}_{hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:8]}"


def reset_pg_schema(schema: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


class StoreSink:
    """EventStore.append: idempotency keys, versions, msgpack encoding, side index, one transaction per batch."""

    def __init__(self, name: str, url: str, *, chained: bool = True):
        self.name = name
        self.store = open_event_store(url, chained=chained)
        self.watch = Stopwatch()

    def write(self, events: list[Event], payloads: list[tuple]) -> None:
        with self.watch:
            self.store.append(events, batch_size=BATCH)

    def close(self) -> None:
        self.store.close()


class OrderedIdsStoreSink(StoreSink):
    """The store fed the same events with time-ordered stanza-ids (as ejabberd, Openfire and
    MongooseIM issue them) instead of Prosody's random ones: shows what key locality is worth."""

    def __init__(self, name: str, url: str):
        super().__init__(name, url)
        self.seq = 0

    def write(self, events: list[Event], payloads: list[tuple]) -> None:
        ordered = []
        for e in events:
            if getattr(e, "stanza_id", None):
                self.seq += 1
                e = msgspec.structs.replace(e, stanza_id=f"{self.seq:016d}")
            ordered.append(e)
        with self.watch:
            self.store.append(ordered, batch_size=BATCH)


class RawSQLiteSink:
    """sqlite3.executemany, WAL, synchronous=NORMAL, one transaction per batch.

    ``indexed`` writes the store's layout (``archive.sqlite_recorder``): the log with its position
    declared, and the side table keyed (room, the room's highest second so far, version) with the
    second, log position, key digest, time and a chain link as long as the store keeps (``STORED_LINK``),
    and its partial index of late events; the store's SQLite log has no (room, version) key of its own.
    It splits the store's cost into schema and Python.
    """

    def __init__(self, name: str, path: Path, *, indexed: bool = False):
        self.name = name
        self.indexed = indexed
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE ev (position INTEGER PRIMARY KEY, room TEXT, version INTEGER, topic TEXT, "
                          "state BLOB)")
        if indexed:
            self.conn.execute(
                "CREATE TABLE idx (room TEXT NOT NULL, high INTEGER NOT NULL, version INTEGER NOT NULL, "
                "second INTEGER NOT NULL, position INTEGER NOT NULL, digest INTEGER NOT NULL, t REAL NOT NULL, "
                "link BLOB, PRIMARY KEY (room, high, version)) WITHOUT ROWID"
            )
            self.conn.execute("CREATE INDEX idx_late ON idx (room, second, version) WHERE second<high")
        self.position = 0
        self.watch = Stopwatch()

    def write(self, events: list[Event], payloads: list[tuple]) -> None:
        log = [p[:4] for p in payloads]
        side = [(*p[4:8], self.position + i, *p[8:]) for i, p in enumerate(payloads, 1)] if self.indexed else []
        self.position += len(payloads)
        with self.watch:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO ev (room, version, topic, state) VALUES (?,?,?,?)", log)
            if side:
                self.conn.executemany("INSERT INTO idx VALUES (?,?,?,?,?,?,?,?)", side)
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class RawPostgresSink:
    """psycopg executemany (pipelined by psycopg 3) or COPY into a plain table, one transaction per batch."""

    def __init__(self, name: str, schema: str, *, copy: bool):
        self.name = name
        self.copy = copy
        self.conn = psycopg.connect(DSN)
        self.table = f'"{schema}".ev'
        self.conn.execute(
            f"CREATE TABLE {self.table} (id bigserial PRIMARY KEY, room text, version bigint, topic text, state bytea)"
        )
        self.conn.commit()
        self.watch = Stopwatch()

    def write(self, events: list[Event], payloads: list[tuple]) -> None:
        with self.watch:
            with self.conn.cursor() as cur:
                if self.copy:
                    with cur.copy(f"COPY {self.table} (room, version, topic, state) FROM STDIN") as copy:
                        for p in payloads:
                            copy.write_row(p[:4])
                else:
                    cur.executemany(
                        f"INSERT INTO {self.table} (room, version, topic, state) VALUES (%s,%s,%s,%s)",
                        [p[:4] for p in payloads],
                    )
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _payloads(events: list[Event], versions: dict[str, int], highs: dict[str, int]) -> list[tuple]:
    """Each event's log row (room, version, topic, state) and side index row but its position (room, the
    room's highest second so far, version, second; then digest, time, a link as long as the store keeps)."""
    rows = []
    for e in events:
        v = versions[e.room] = versions.get(e.room, 0) + 1
        t = e.occurred_at.timestamp()
        second = math.floor(t)
        high = highs[e.room] = max(highs.get(e.room, second), second)
        state = to_msgpack(e)
        rows.append((e.room, v, e.__struct_config__.tag, state, e.room, high, v, second,
                     key_digest(idempotency_key(e)), t, bytearray(hashlib.sha256(state).digest()[:STORED_LINK])))
    return rows


def _feed(spec: CorpusSpec, sinks: list) -> tuple[int, int, dict[str, float], dict[str, float]]:
    """One pass over the corpus, each batch written by every sink in turn; returns the events, the
    messages among them, and, for a pass longer than ``MARK`` events, each sink's rate over its first
    ``MARK`` events and over its last ``MARK`` (empty dicts otherwise)."""
    n = messages = 0
    first: dict[str, float] = {}
    tail_from = spec.events - MARK  # where the last MARK events start
    tail_start: dict[str, tuple[int, float]] = {}
    versions: dict[str, int] = {}
    highs: dict[str, int] = {}
    for batch in batched(generate(spec), BATCH):
        if n >= tail_from and not tail_start:
            tail_start = {s.name: (n, s.watch.elapsed) for s in sinks}
        payloads = _payloads(batch, versions, highs)
        for sink in sinks:
            sink.write(batch, payloads)
        n += len(batch)
        messages += sum(1 for e in batch if isinstance(e, MessagePosted))
        if n % 200_000 == 0:
            print(f"    {n:,}: " + ", ".join(f"{s.name} {n / s.watch.elapsed:,.0f}/s" for s in sinks), flush=True)
        if n >= MARK and not first:
            first = {s.name: n / s.watch.elapsed for s in sinks}
    for sink in sinks:
        sink.close()
    if n <= MARK:
        return n, messages, {}, {}
    last = {s.name: (n - tail_start[s.name][0]) / (s.watch.elapsed - tail_start[s.name][1]) for s in sinks}
    return n, messages, first, last


def run_append(spec: CorpusSpec, workdir: Path, results: Results, *, postgres: bool = True,
               light: bool = False) -> dict:
    """Append the corpus to each store beside its raw baselines; returns where the stores are.

    SQLite and PostgreSQL get separate passes: PostgreSQL's server processes
    would otherwise take CPU from the SQLite sinks on this 2-core machine.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    store_path = workdir / "events.sqlite"
    for stale in workdir.glob("*.sqlite*"):
        stale.unlink()
    sinks = [StoreSink("store", f"sqlite:///{store_path}"), RawSQLiteSink("raw", workdir / "raw.sqlite")]
    if not light:  # light (10M): the store and its cheap baseline only; these ratios are the 1M run's
        sinks += [StoreSink("store, unchained", f"sqlite:///{workdir / 'unchained.sqlite'}", chained=False),
                  RawSQLiteSink("raw, store's indexes", workdir / "raw-indexed.sqlite", indexed=True),
                  OrderedIdsStoreSink("store, ordered ids", f"sqlite:///{workdir / 'ordered.sqlite'}")]
    n, messages, first, last = _feed(spec, sinks)
    rate = {s.name: n / s.watch.elapsed for s in sinks}
    results.add(Figure("append", f"store, SQLite (EventStore.append, batches of {BATCH:,})", rate["store"],
                       "events/s", rate["raw"], "raw sqlite3.executemany, WAL, sync=NORMAL, plain table",
                       aim=">= 120,000/s and within 3x of raw"))
    if first:
        for figure in _size_effect("SQLite", n, rate, first, last):
            results.add(figure)
    if light:
        results.notes.append(LIGHT_MIX)
    if not light:
        results.add(_chain_cost("SQLite", rate))
        results.add(Figure("append", "store, SQLite vs raw into the same indexes", rate["store"], "events/s",
                           rate["raw, store's indexes"],
                           "raw executemany into the store's SQLite layout (log; side table keyed (room, high "
                           f"second so far, version) with second, position, digest, time, {STORED_LINK}-byte link; partial "
                           "index of late events)"))
        results.add(Figure("append", "store, SQLite, time-ordered stanza-ids (ejabberd/Openfire style)",
                           rate["store, ordered ids"], "events/s", rate["raw"], "raw sqlite3.executemany, plain table",
                           aim=">= 120,000/s and within 3x of raw"))
    store_bytes = sum(p.stat().st_size for p in workdir.glob("events.sqlite*"))
    raw_bytes = sum(p.stat().st_size for p in workdir.glob("raw.sqlite*"))
    results.add(Figure("disk", "event store, SQLite, bytes per event", store_bytes / n, "B", raw_bytes / n,
                       "raw table of the same payloads", higher_is_better=False))
    write(workdir / "raw-bytes.txt", str(raw_bytes))
    for scratch in [*workdir.glob("raw*.sqlite*"), *workdir.glob("ordered.sqlite*"), *workdir.glob("unchained.sqlite*")]:
        scratch.unlink()
    info = {"events": n, "messages": messages, "sqlite_url": f"sqlite:///{store_path}", "postgres_url": None}
    if not postgres:
        return info
    schema = {role: pg_schema(workdir, role) for role in ("store", "raw", "copy", "unchained")}
    for name in schema.values():
        reset_pg_schema(name)
    # light (10M): the store alone on its server. A baseline's COPY of as many rows into the same server
    # shares its WAL, checkpoints and background writer with the store and bends the store's rate at the
    # end of the pass (measured at 10M: last/first 1M 0.73 beside the COPY, 0.85-0.93 alone); a store in
    # use has its server to itself. The 1M run's baselines give the ratios.
    sinks = [StoreSink("store", pg_url(schema["store"]))]
    if not light:
        sinks += [RawPostgresSink("COPY", schema["copy"], copy=True),
                  StoreSink("store, unchained", pg_url(schema["unchained"]), chained=False),
                  RawPostgresSink("executemany", schema["raw"], copy=False)]
    server = activity(DSN)
    _, _, first, last = _feed(spec, sinks)
    results.notes.append(during(f"PostgreSQL server, append pass ({', '.join(s.name for s in sinks)})", server,
                                activity(DSN), n))
    rate = {s.name: n / s.watch.elapsed for s in sinks}
    results.add(Figure("append", f"store, PostgreSQL (EventStore.append, batches of {BATCH:,})", rate["store"],
                       "events/s", rate.get("executemany"), "raw psycopg executemany, plain table" if not light else "",
                       aim=">= 100,000/s"))
    if not light:
        results.add(Figure("append", "store, PostgreSQL vs COPY", rate["store"], "events/s", rate["COPY"],
                           "raw psycopg COPY, plain table"))
    if first:
        for figure in _size_effect("PostgreSQL", n, rate, first, last):
            results.add(figure)
    if not light:
        results.add(_chain_cost("PostgreSQL", rate))
    with psycopg.connect(DSN) as conn:
        size = lambda schema: conn.execute(  # noqa: E731
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,)).fetchone()[0]
        results.add(Figure("disk", "event store, PostgreSQL, bytes per event", float(size(schema["store"])) / n, "B",
                           float(size(schema["copy"])) / n if not light else None, "raw table of the same payloads",
                           higher_is_better=False))
    for role in ("raw", "copy", "unchained"):
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema[role]}" CASCADE')
    info["postgres_url"] = pg_url(schema["store"])
    return info


def _size_effect(backend: str, n: int, rate: dict[str, float], first: dict[str, float],
                 last: dict[str, float]) -> list[Figure]:
    """A pass past ``MARK`` events: the store's rate over its last ``MARK`` events, and over the whole
    pass, against its rate over the pass's first ``MARK``. The same pass, sinks and machine conditions:
    only the store's size differs. (The scale table's change of the store's append rate from one size to
    the next compares passes that feed different mixes of sinks.) The aim is on the rate at the end: a
    whole pass's average hides a decline at its end behind its fast start."""
    baseline = f"the same pass's rate over its first {MARK:,} events (same sinks, same run)"
    return [
        Figure("append", f"store, {backend}, last {MARK:,} of {n:,} events vs the first {MARK:,}",
               last["store"], "events/s", first["store"], baseline, aim="ratio >= 0.8 (within 20% of the rate at 1M)"),
        Figure("append", f"store, {backend}, whole pass ({n:,} events) vs its first {MARK:,}",
               rate["store"], "events/s", first["store"], baseline),
    ]


def _chain_cost(backend: str, rate: dict[str, float]) -> Figure:
    """Tamper evidence (a SHA-256 link per event, the stream heads upserted per batch) vs the same
    store and events without it, fed batch by batch in the same pass."""
    return Figure("append", f"store, {backend}, with hash chains vs without", rate["store"], "events/s",
                  rate["store, unchained"], "the same store appending without hash-chain links",
                  aim="ratio >= 0.9")


def run_read(url: str, results: Results, label: str, *, baseline: bool = True) -> float:
    """Decoded read rates vs raw page reads of the recorder: ``store.read_log`` (every other reader of the whole
    log), and the pages projections read (``read_log_page``, decoded in one call each, pages of a rebuild's size),
    whose rate is returned: the projections' ceiling.
    ``baseline=False`` (10M): the decoded rates alone (the raw pages cost a 10M run a minute or two)."""
    store = open_event_store(url)
    try:
        raw = Stopwatch()
        n_raw = 0
        after = 0
        with raw:
            while baseline:
                page = store._recorder.select_notifications(after, 1000, inclusive_of_start=False)
                n_raw += len(page)
                if len(page) < 1000:
                    break
                after = page[-1].id
        decoded = Stopwatch()
        n = 0
        with decoded:
            for _ in store.read_log(0, page_size=1000):
                n += 1
        paged = Stopwatch()
        m = after = 0
        with paged:
            while (page := store.read_log_page(after, REBUILD_PAGE)).positions:
                m += len(from_msgpack_array(page.states))
                after = page.positions[-1]
    finally:
        store.close()
    raw_rate = n_raw / raw.elapsed if baseline else None
    results.add(Figure("read", f"read_log, decoded events, {label}", n / decoded.elapsed, "events/s",
                       raw_rate, "raw select_notifications pages (undecoded)"))
    rate = m / paged.elapsed
    results.add(Figure("read", f"log pages as projections read them (read_log_page), decoded, {label}", rate,
                       "events/s", raw_rate, "raw select_notifications pages (undecoded)"))
    return rate
