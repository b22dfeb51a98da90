"""Time-ranged reads of a big room cost per page what they cost in a small one.

Two rooms in one store of their own: a small one (1,000 events) and a big one
(the corpus size: 100k, 1M, ...), one message a second. Each read is timed as
one page taken from deep inside the room's range (its last thousandth, and its
middle): the store's ranged read (``events --from/--to``, ranged replay and
export), a transcript page of the view, the widget's changes after a cursor, and
/state at a moment. Each figure is the big room's page against the small room's
(median of REPEAT): a ratio near 1 is a page whose cost does not grow with the room.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

from archive import events as ev
from archive.application import open_event_store
from archive.recorders import range_params
from projections.follower import LogFollower
from projections.views import Views

from .corpus import CorpusSpec
from .measure import Figure, Results

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SMALL = 1_000
PAGE = 1_000
REPEAT = 41
BATCH = 10_000


def run_ranged(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    big = spec.events
    rooms = {"small@conference.example.org": SMALL, "big@conference.example.org": big}
    with open_event_store(f"sqlite:///{workdir / 'ranged.sqlite'}") as store:
        if store.head() != SMALL + big:  # else the rooms of an earlier run are reused (appending is idempotent)
            for room, count in rooms.items():
                for start in range(0, count, BATCH):
                    store.append([_message(room, i) for i in range(start, min(count, start + BATCH))],
                                 batch_size=BATCH)
        with Views(f"sqlite:///{workdir / 'ranged-views.sqlite'}", store) as views:
            began = time.perf_counter()
            for projection in views.projections(["transcripts"]):
                LogFollower(store, projection, commit_interval=3600, page_size=5000).catch_up()
            ctx["ranged_view_seconds"] = time.perf_counter() - began
            (small_room, small), (big_room, _) = rooms.items()
            for where, fraction in (("at the end", 0.999), ("in the middle", 0.5)):
                small_reads = _reads(store, views, small_room, small, fraction)
                big_reads = _reads(store, views, big_room, big, fraction)
                for read in small_reads:
                    big_ms, small_ms = _median_ms(big_reads[read], small_reads[read])
                    results.add(Figure(
                        "ranged reads", f"{read}, {where} of a {big:,}-event room", big_ms, "ms",
                        small_ms, f"same in a {SMALL:,}-event room", higher_is_better=False,
                        aim="ratio ~1: a page costs the same however large the room",
                    ))  # fmt: skip
                # Work, not time (others share the machine): SQLite VM steps of the store's page query.
                path = workdir / "ranged.sqlite"
                steps = {room: _vm_steps(path, store, room, count, fraction) for room, count in rooms.items()}
                results.add(Figure(
                    "ranged reads", f"store ranged read, SQLite VM steps per page, {where} of a {big:,}-event room",
                    steps[big_room], "steps", steps[small_room], f"same in a {SMALL:,}-event room",
                    higher_is_better=False, aim="ratio ~1",
                ))  # fmt: skip
    results.notes.append(
        f"ranged reads: rooms of {SMALL:,} and {big:,} events (one a second) in a store of their own; "
        f"page of {PAGE:,} (widget 200, /state 200 lines); median of {REPEAT}"
    )


def _message(room: str, i: int) -> ev.MessagePosted:
    moment = T0 + timedelta(seconds=i)
    return ev.MessagePosted(room=room, occurred_at=moment, recorded_at=moment, nick=f"user{i % 50}",
                            body=f"message number {i} in the room", stanza_id=f"{room}-{i}", message_id=f"m{i}")


def _reads(store, views: Views, room: str, count: int, fraction: float) -> dict:
    start, end = _range(count, fraction)
    at = start + timedelta(seconds=PAGE)
    # The widget's cursor, as the feed issues it: after a line deep inside the room (lines change with their own
    # event), with its floor (``Transcripts.changes``).
    line = views.transcripts.page(room, start=start, limit=1).lines[0]
    cursor = views.transcripts.changes(room, after=line.id - 1, limit=1)

    def store_page():
        taken = 0
        for _ in store.read_room(room, start=start, end=end, page_size=PAGE):
            taken += 1
            if taken == PAGE:
                return

    reads = {
        "store ranged read (events --from/--to, replay, export)": store_page,
        "transcript view page (from, to)": lambda: views.transcripts.page(room, start=start, end=end, limit=PAGE),
        "widget changes after a cursor": lambda: views.transcripts.changes(
            room, after=cursor.last, after_line=cursor.last_line, floor=cursor.floor, limit=200),
        "/state at T (200 lines)": lambda: views.room_state_at(room, at, limit=200),
    }
    return reads


def _vm_steps(path: Path, store, room: str, count: int, fraction: float) -> int:
    """SQLite virtual-machine instructions that one page of the store's ranged read executes
    (counted in hundreds by a progress handler on a connection of its own)."""
    start, end = _range(count, fraction)
    sql = store._recorder._room_range_sql()
    params = range_params(room, None, PAGE, start.timestamp(), end.timestamp())
    steps = [0]

    def tick() -> int:
        steps[0] += 100
        return 0

    with closing(sqlite3.connect(path)) as connection:
        connection.set_progress_handler(tick, 100)
        connection.execute(sql, params).fetchall()
    return steps[0]


def _range(count: int, fraction: float) -> tuple[datetime, datetime]:
    first = int(count * fraction) - PAGE if count > 2 * PAGE else 0
    return T0 + timedelta(seconds=first), T0 + timedelta(seconds=count)


def _median_ms(*reads) -> list[float]:
    """The median time of each read, taken in turns (others share the machine: a burst of load
    then slows both rooms' samples alike)."""
    for read in reads:
        read()  # warm the caches the first page of a session pays for
    samples: list[list[float]] = [[] for _ in reads]
    for _ in range(REPEAT):
        for read, times in zip(reads, samples):
            began = time.perf_counter()
            read()
            times.append((time.perf_counter() - began) * 1000)
    return [statistics.median(times) for times in samples]
