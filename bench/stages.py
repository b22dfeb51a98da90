"""The archive-core stages: append and read (see bench/append.py), and the stores they leave behind
for the later stages, one per store kind."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from archive.application import open_event_store

from .append import pg_schema, pg_url, reset_pg_schema
from .append import run_append as _append
from .append import run_read as _read
from .corpus import CorpusSpec, generate
from .files import write
from .measure import Results

MARKER = "corpus.txt"  # the corpus the workdir's SQLite store holds
PG_MARKER = "corpus-postgresql.txt"  # the corpus in the workdir's PostgreSQL store schema


def run_append(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    for built in (workdir / MARKER, workdir / PG_MARKER, *index_dirs(workdir)):  # what the old stores fed
        shutil.rmtree(built) if built.is_dir() else built.unlink(missing_ok=True)
    info = _append(spec, workdir, results, postgres=ctx["postgres"], light=ctx.get("light", False))
    write(workdir / MARKER, corpus_named(spec))
    if info.get("postgres_url"):
        write(workdir / PG_MARKER, _pg_contents(spec, info["postgres_url"]))
    ctx.update(info)


def run_read(spec: CorpusSpec, workdir: Path, results: Results, ctx: dict) -> None:
    rate = _read(store_url(spec, workdir, ctx), results, ctx["store"], baseline=not ctx.get("light"))
    ctx.setdefault("read_rate", {})[ctx["store"]] = rate


def store_url(spec: CorpusSpec, workdir: Path, ctx: dict) -> str:
    """The store of the stage's kind (``ctx["store"]``) holding this corpus."""
    if ctx.get("store") == "PostgreSQL":
        return ensure_postgres_store(spec, workdir, ctx)
    return ensure_store(spec, workdir, ctx)


def index_dirs(workdir: Path) -> list[Path]:
    return [workdir / "index", workdir / "index-postgresql"]


def index_dir(workdir: Path, store: str) -> Path:
    """Each store's search index follows that store's log (its positions)."""
    return index_dirs(workdir)[store == "PostgreSQL"]


def ensure_store(spec: CorpusSpec, workdir: Path, ctx: dict) -> str:
    """The SQLite store holding this corpus: the append stage's, or built now (untimed)."""
    path = workdir / "events.sqlite"
    marker = workdir / MARKER
    if "sqlite_url" not in ctx:
        if not (path.exists() and _says(marker, corpus_named(spec))):
            workdir.mkdir(parents=True, exist_ok=True)
            for stale in [*workdir.glob("*.sqlite*"), *index_dirs(workdir)]:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
            print("  building the SQLite store (untimed)", flush=True)
            with open_event_store(f"sqlite:///{path}") as store:
                store.append(generate(spec))
            write(marker, corpus_named(spec))
        ctx["sqlite_url"] = f"sqlite:///{path}"
    return ctx["sqlite_url"]


def ensure_postgres_store(spec: CorpusSpec, workdir: Path, ctx: dict) -> str:
    """The PostgreSQL store (the workdir's schema) holding this corpus: the append stage's, or built now (untimed)."""
    marker = workdir / PG_MARKER
    if not ctx.get("postgres_url"):
        if not _says(marker, _pg_contents(spec, pg_url(pg_schema(workdir, "store")))):
            workdir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(index_dir(workdir, "PostgreSQL"), ignore_errors=True)
            print("  building the PostgreSQL store (untimed)", flush=True)
            reset_pg_schema(pg_schema(workdir, "store"))
            with open_event_store(pg_url(pg_schema(workdir, "store"))) as store:
                store.append(generate(spec))
            write(marker, _pg_contents(spec, pg_url(pg_schema(workdir, "store"))))
        ctx["postgres_url"] = pg_url(pg_schema(workdir, "store"))
    return ctx["postgres_url"]


def _pg_contents(spec: CorpusSpec, url: str) -> str:
    """What the schema holds, as its marker says it: every size's run uses the one schema, so the marker
    of an earlier size is told apart by the log's head."""
    with open_event_store(url) as store:
        return f"{corpus_named(spec)}head {store.head()}\n"


def corpus_named(spec: CorpusSpec) -> str:
    """A marker's text: the corpus, not where its events are kept (the cache directory is the workdir,
    so a workdir seeded with another's hard links would never match, and rebuild for minutes)."""
    return f"{dataclasses.replace(spec, cache=None)}\n"


def _says(marker: Path, expected: str) -> bool:
    """Markers written before named the spec with its cache directory: the same corpus, kept elsewhere."""
    return marker.exists() and re.sub(r"cache='[^']*'\)", "cache=None)", marker.read_text()).strip() == expected.strip()
