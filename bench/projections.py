"""Rebuild rate of the transcript and presence views vs the raw read rate of the log (same run), per store."""

from __future__ import annotations

from pathlib import Path

from archive.application import open_event_store
from chat_archive.bootstrap import view_projections
from projections.rebuild import rebuild

from .append import run_read
from .corpus import CorpusSpec
from .measure import Figure, Results
from .setup import bench_config
from .stages import store_url


def run_projections(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    kind = ctx["store"]
    url = store_url(spec, workdir, ctx)
    read_rate = ctx.get("read_rate", {}).get(kind) or run_read(url, results, kind)
    config = bench_config(workdir, store_url=url)
    both = (["transcripts", "presence"], "transcripts + presence, one read")
    # Each view alone shows which one costs what; on SQLite at 1M that is enough (PostgreSQL's take minutes
    # a run can spare less). At 10M the views are rebuilt once, both from one read (the rate the aim is about).
    alone = [(["transcripts"], "transcripts"), (["presence"], "presence")]
    rebuilds = [both] if ctx.get("light") or kind != "SQLite" else [*alone, both]
    with open_event_store(url) as store:
        for names, label in rebuilds:
            if kind == "SQLite":  # a fresh file each time: the disk figure is of the last rebuild's views only
                for stale in workdir.glob("views.sqlite*"):
                    stale.unlink()
            targets, close = view_projections(config, store, names, load=False)  # never read: rebuilt
            try:
                report = rebuild(store, targets, progress=False)
            finally:
                close()
            results.add(Figure("projections", f"rebuild {label}, {kind}", report.events_per_second, "events/s",
                               read_rate, "log pages decoded as projections read them (ceiling)",
                               aim="both views from 1M events in < 8 s" if "+" in label else "",
                               note=f"{report.events:,} events in {report.seconds:.1f} s"))
    if kind == "SQLite":
        views_bytes = sum(p.stat().st_size for p in workdir.glob("views.sqlite*"))
        store_bytes = sum(p.stat().st_size for p in workdir.glob("events.sqlite*"))
        results.add(Figure("disk", "views (transcripts + presence), bytes per event", views_bytes / spec.events, "B",
                           store_bytes / spec.events, "event store", higher_is_better=False))
