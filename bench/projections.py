"""Rebuild rate of the transcript and presence views vs the raw read rate of the log (same run)."""

from __future__ import annotations

from pathlib import Path

from archive.application import open_event_store
from chat_archive.bootstrap import view_projections
from projections.rebuild import rebuild

from .append import run_read
from .corpus import CorpusSpec
from .measure import Figure, Results
from .setup import bench_config
from .stages import ensure_store


def run_projections(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    url = ensure_store(spec, workdir, ctx)
    read_rate = ctx.get("read_rate") or run_read(url, results, "SQLite")
    config = bench_config(workdir)
    for stale in workdir.glob("views.sqlite*"):
        stale.unlink()
    with open_event_store(url) as store:
        for names, label in ((["transcripts"], "transcripts"), (["presence"], "presence"),
                             (["transcripts", "presence"], "transcripts + presence, one read")):
            targets, close = view_projections(config, store, names)
            try:
                report = rebuild(store, targets, progress=False)
            finally:
                close()
            results.add(Figure("projections", f"rebuild {label}, SQLite", report.events_per_second, "events/s",
                               read_rate, "read_log decoded (ceiling)",
                               aim="both views from 1M events in < 30 s" if "+" in label else "",
                               note=f"{report.events:,} events in {report.seconds:.1f} s"))
    views_bytes = sum(p.stat().st_size for p in workdir.glob("views.sqlite*"))
    ctx["views_bytes"] = views_bytes
    store_bytes = sum(p.stat().st_size for p in workdir.glob("events.sqlite*"))
    results.add(Figure("disk", "views (transcripts + presence), bytes per event", views_bytes / spec.events, "B",
                       store_bytes / spec.events, "event store", higher_is_better=False))
