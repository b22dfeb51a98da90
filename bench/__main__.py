"""`python -m bench --size 1m,10m [--only append,read,...]`: run the suite, write bench/RESULTS.md.

Stages (in this order, each size in turn: every stage on SQLite, then those per store on PostgreSQL;
--only picks some):
  append       store append rate, SQLite and PostgreSQL, vs raw inserts of the same payloads; disk bytes/event
  read         store.read_log decoded vs raw page reads (the ceiling for every projection), per store
  projections  transcript and presence rebuild rate vs the raw read rate, per store
  search       index rate, search latency by query class, vs SQLite FTS5 on the same corpus and queries
  api          requests/s and p50/p99 of search and transcript (serve --workers 1 and 2, beside /healthz), wrk,
               per store
  replay       NDJSON replay endpoint events/s, per store
  freshness    end-to-end freshness through a real Prosody, listener rate vs Prosody's own delivery rate, per
               store (a fresh store: measured at the run's first size only)
  ranged       a page of a time-ranged read (store, transcript view, widget, /state) of a room of --size
               events vs the same page of a 1k-event room (a store of its own; at the run's first size only)

Every size of a run is measured on one commit; the load average is recorded before and after every stage.
The run refuses to start writing bench/RESULTS*.md while the load is above the core count (it waits
--quiet-wait seconds for it to fall first, and as long again before each stage; --allow-load writes it
marked as loaded). At 10m (or with --light) the bench measures chat-archive's rates and only the cheap
baselines (raw inserts; PostgreSQL's store appends alone); its append pass also reports each store's rate over its first 1m events, so
that size is compared within one pass.
Stages after `append` reuse the stores it built in --workdir (built untimed if missing), and every pass over
a corpus after the first reads it from --workdir instead of generating it again.
`python -m bench corpus --size 1m --out FILE` writes a corpus as JSON lines instead;
`python -m bench report [--out bench/RESULTS.md]` re-renders a results file from its saved runs
(bench/results/RESULTS.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

from . import pgserver, runs
from .corpus import SIZES, CorpusSpec, from_irc_log, generate, write_ndjson
from .machine import machine, versions
from .measure import Results, StageRun, peak_rss_self
from .files import write
from .results import load1, loadavg, render

HERE = Path(__file__).parent
LIGHT_FROM = 10_000_000  # events: from this size on only the cheap baselines are measured again


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["corpus"]:
        return corpus_command(argv[1:])
    if argv[:1] == ["report"]:
        return report_command(argv[1:])
    args = parse(argv)
    cores = os.cpu_count() or 1
    publishing = args.out.resolve().parent == HERE.resolve()
    quiet_wait = args.quiet_wait if publishing and not args.allow_load else 0
    load_start = wait_for_quiet(cores, quiet_wait)
    refusal = refuse_to_publish(load_start, cores, args.out, args.allow_load)
    if refusal:
        print(f"bench: {refusal}", file=sys.stderr)
        return 1
    run = describe_run(argv, load_start, postgres=not args.no_postgres)
    saved_at = runs.saved_path(args.out)
    before = runs.load(saved_at)
    whole = set(args.only) == set(runs.STAGES)
    measured: dict[str, Results] = {}
    for n, (size, spec) in enumerate(specs(args)):
        workdir = args.workdir / size
        res = measured[size] = Results(size=size, corpus=corpus_label(spec))
        spec = dataclasses.replace(spec, cache=str(workdir))
        print(f"bench: {size}: {spec.events:,} events, {spec.rooms} rooms, {spec.users} users, workdir {workdir}",
              flush=True)
        ctx: dict = {"postgres": not args.no_postgres, "light": args.light or spec.events >= LIGHT_FROM,
                     "search_from_corpus": args.search_from_corpus}
        for stage, store in plan([s for s in args.only if not (n and s in runs.FIRST_SIZE_ONLY)], ctx["postgres"]):
            # Every stage starts from a server with nothing left to write (see bench.pgserver).
            if ctx["postgres"] and (failure := pgserver.checkpoint(pgserver.DSN)):
                print(f"bench: CHECKPOINT before {stage} failed: {failure}", flush=True)
            # The previous stage's own work (wrk, servers, a 10M pass) lifts the load above the cores for a
            # while after it ends: a stage started then would be measured on a busy machine.
            wait_for_quiet(cores, quiet_wait)
            run_stage(stage, runs.STAGES[stage][0], store, spec, workdir, res, ctx)
            res.rss["bench driver (corpus generation, in-process stores and index)"] = peak_rss_self()
            # after every stage: a long run's figures survive a later failure (or a run stopped for time)
            runs.save(saved_at, runs.merge(before, run, measured, whole=whole))
    write(args.out, render(runs.load(saved_at)))
    print(f"wrote {args.out} (saved runs: {saved_at})")
    return 0


def describe_run(argv: list[str], load_start: str, *, postgres: bool) -> dict:
    return {"command": f"python -m bench {' '.join(argv)}".strip(), "commit": git_commit(),
            "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "load_start": load_start,
            "machine": machine() | ({"PostgreSQL settings": pgserver.settings(pgserver.DSN)} if postgres else {}),
            "versions": versions(pgserver.DSN if postgres else None)}


def plan(stages: list[str], postgres: bool) -> list[tuple[str, str]]:
    """(stage, store) in the order measured: every stage on SQLite (or on both in one stage), then the
    PostgreSQL ones, so that a run stopped for time has lost the PostgreSQL figures of the largest size
    last (the report orders them stage beside stage)."""
    ordered = [s for s in runs.STAGES if s in stages]
    first = [(s, "SQLite" if runs.STAGES[s][1] else "") for s in ordered]
    return first + [(s, "PostgreSQL") for s in ordered if runs.STAGES[s][1] and postgres]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                     epilog="\n".join(__doc__.split("\n")[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", "--sizes", default="100k",
                        help=f"corpus sizes, comma-separated, measured in turn ({', '.join(SIZES)}; default 100k)")
    parser.add_argument("--only", default=",".join(runs.STAGES),
                        help=f"comma-separated stages (default all: {','.join(runs.STAGES)})")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/chat-archive-bench"),
                        help="where corpora, stores, indexes and servers live during the run")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL figures")
    parser.add_argument("--light", action="store_true",
                        help="only chat-archive's rates and the cheap baselines at every size (default from 10m on)")
    parser.add_argument("--search-from-corpus", action="store_true",
                        help="search: index the generated corpus directly instead of the store's log (no store needed)")
    parser.add_argument("--allow-load", action="store_true",
                        help="write bench/RESULTS*.md even when the load at start is above the core count (it says so)")
    parser.add_argument("--quiet-wait", type=float, default=180, metavar="SECONDS",
                        help="wait up to this long for the load to fall to the core count before the run and before each "
                             "stage (default 180)")
    parser.add_argument("--irc-log", metavar="FILE", help="use a real IRC-style log as the corpus instead "
                        "([HH:MM] <nick> text, === nick joined/left); results are saved under the size 'irc'")
    parser.add_argument("--irc-room", default="irc@conference.example.org", help="room JID for --irc-log")
    parser.add_argument("--irc-date", default="2024-01-01", help="date of the log's first line (YYYY-MM-DD)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default bench/RESULTS.md for runs including 1m, "
                             "bench/RESULTS-<sizes>.md otherwise)")
    args = parser.parse_args(argv)
    args.sizes = ["irc"] if args.irc_log else [s.strip() for s in args.size.split(",") if s.strip()]
    unknown_sizes = [s for s in args.sizes if s not in SIZES and not args.irc_log]
    if unknown_sizes or not args.sizes:
        parser.error(f"unknown size(s): {', '.join(unknown_sizes) or '(none given)'}; sizes: {', '.join(SIZES)}")
    args.sizes = sorted(dict.fromkeys(args.sizes), key=lambda s: SIZES.get(s, 0))
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(runs.STAGES)
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}; stages: {', '.join(runs.STAGES)}")
    args.out = args.out or default_out(args.sizes)
    return args


def specs(args: argparse.Namespace):
    if args.irc_log:
        yield "irc", from_irc_log(args.irc_log, args.irc_room, args.irc_date)
        return
    for size in args.sizes:
        yield size, CorpusSpec.for_size(size, seed=args.seed)


def corpus_label(spec: CorpusSpec) -> str:
    if spec.irc_log:
        return f"{spec.events:,} events of the IRC log {Path(spec.irc_log).name}"
    return f"{spec.events:,} events, {spec.rooms} rooms, {spec.users} users, seed {spec.seed}"


def run_stage(stage: str, module: str, store: str, spec: CorpusSpec, workdir: Path, res: Results, ctx: dict) -> None:
    """One stage on one store: its figures, notes and peak memory tagged with it and the load around it."""
    record = StageRun(stage, store, load_before=loadavg())
    figures, notes, rss = len(res.figures), len(res.notes), dict(res.rss)
    ctx["store"] = store or "SQLite"
    print(f"[{record.key}] load {record.load_before}", flush=True)
    started = time.perf_counter()
    try:
        getattr(importlib.import_module(module), f"run_{stage}")(spec, workdir, res, ctx)
    except Exception as e:  # noqa: BLE001 - one failing stage must not lose the others' figures
        record.failed = f"{type(e).__name__}: {e}"
        print(f"  stage {record.key} failed: {record.failed}", flush=True)
    record.seconds = time.perf_counter() - started
    record.load_after = loadavg()
    print(f"  ({record.seconds:.0f} s, load {record.load_after})", flush=True)
    for figure in res.figures[figures:]:
        figure.stage = record.key
    record.notes = res.notes[notes:]
    del res.notes[notes:]
    record.rss = {name: peak for name, peak in res.rss.items() if rss.get(name) != peak}
    for name in record.rss:
        del res.rss[name]
    res.stages.append(record)


def refuse_to_publish(load: str, cores: int, out: Path, allow_load: bool) -> str | None:
    """Why a run must not start, if it would publish (write into bench/) figures taken on a busy machine."""
    if load1(load) <= cores or allow_load or out.resolve().parent != HERE.resolve():
        return None
    return (f"the load average is {load}, above the {cores} cores: not writing {out} (rates measured now are only "
            "same-run ratios). Run it on a quiet machine, or pass --allow-load to write it marked as loaded, "
            "or --out elsewhere.")


def wait_for_quiet(cores: int, seconds: float) -> str:
    """The load average once its 1-minute figure is at most ``cores``, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    load = loadavg()
    while load1(load) > cores and time.monotonic() < deadline:
        print(f"bench: load {load} above the {cores} cores; waiting for it to fall", flush=True)
        time.sleep(min(15, max(0.0, deadline - time.monotonic())))
        load = loadavg()
    return load


def git_commit() -> str:
    """The commit measured, and whether the checkout differed from it (the saved results aside)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=10).stdout

    try:
        commit = git("log", "-1", "--format=%h %cI").strip() or "unknown"
        changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                   if "bench/RESULTS" not in line and "bench/results/" not in line]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (f" with uncommitted changes to {len(changed)} files" if changed else "")


def default_out(sizes: list[str]) -> Path:
    """A run including 1m is the published one (bench/RESULTS.md); other runs get a file of their own."""
    return HERE / ("RESULTS.md" if "1m" in sizes else f"RESULTS-{'+'.join(sizes)}.md")


def report_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report",
                                     description="re-render a results file from its saved runs")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="default: bench/RESULTS.md")
    parser.add_argument("--notes", type=Path, help="a Markdown file of remarks appended to the report")
    args = parser.parse_args(argv)
    saved = runs.load(runs.saved_path(args.out))
    if saved is None:
        parser.error(f"no saved runs for {args.out} ({runs.saved_path(args.out)})")
    write(args.out, render(saved, notes=args.notes.read_text(encoding="utf-8") if args.notes else ""))
    print(f"wrote {args.out}")
    return 0


def corpus_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench corpus", description="write a corpus as JSON lines")
    parser.add_argument("--size", choices=list(SIZES), default="10k")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    n = write_ndjson(generate(CorpusSpec.for_size(args.size, seed=args.seed)), args.out)
    print(f"wrote {n:,} events to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
