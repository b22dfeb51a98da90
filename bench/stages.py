"""The archive-core stages: append and read (see bench/append.py)."""

from __future__ import annotations

from pathlib import Path

from archive.application import open_event_store

from .append import run_append as _append
from .append import run_read as _read
from .corpus import CorpusSpec, generate
from .measure import Results

MARKER = "corpus.txt"


def run_append(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    info = _append(spec, workdir, results, postgres=ctx["postgres"], light=ctx.get("light", False))
    (workdir / MARKER).write_text(f"{spec}\n")
    ctx.update(info)


def run_read(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    ensure_store(spec, workdir, ctx)
    ctx["read_rate"] = _read(ctx["sqlite_url"], results, "SQLite")
    if ctx.get("postgres_url"):
        _read(ctx["postgres_url"], results, "PostgreSQL")


def ensure_store(spec: CorpusSpec, workdir: Path, ctx: dict) -> str:
    """The SQLite store holding this corpus: the append stage's, or built now (untimed)."""
    path = workdir / "events.sqlite"
    marker = workdir / MARKER
    if "sqlite_url" not in ctx:
        if not (path.exists() and marker.exists() and marker.read_text().strip() == str(spec)):
            workdir.mkdir(parents=True, exist_ok=True)
            for stale in workdir.glob("events.sqlite*"):
                stale.unlink()
            print("  building the SQLite store (untimed)", flush=True)
            with open_event_store(f"sqlite:///{path}") as store:
                store.append(generate(spec))
            marker.write_text(f"{spec}\n")
        ctx["sqlite_url"] = f"sqlite:///{path}"
    return ctx["sqlite_url"]
