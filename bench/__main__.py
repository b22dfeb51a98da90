"""`python -m bench --size 100k|1m|10m [--only append,read,...]`: run the suite, write bench/RESULTS.md.

Stages (run in this order; --only picks some):
  append       store append rate, SQLite and PostgreSQL, vs raw inserts of the same payloads; disk bytes/event
  read         store.read_log decoded vs raw page reads (the ceiling for every projection)
  projections  transcript and presence rebuild rate vs the raw read rate
  search       index rate, search latency by query class, vs SQLite FTS5 on the same corpus and queries
  api          requests/s and p50/p99 of search and transcript (serve --workers 1 and 2, beside /healthz), wrk
  replay       NDJSON replay endpoint events/s
  freshness    end-to-end freshness through a real Prosody, listener rate vs Prosody's own delivery rate
  ranged       a page of a time-ranged read (store, transcript view, widget, /state) of a room of --size
               events vs the same page of a 1k-event room (a store of its own)

Stages after `append` reuse the SQLite store it built in --workdir (built without baselines if missing).
`python -m bench corpus --size 1m --out FILE` writes a corpus as JSON lines instead;
`python -m bench report --size 1m` re-renders bench/RESULTS.md from the saved run (bench/results/1m.json).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import msgspec

from . import results as report
from .corpus import SIZES, CorpusSpec, from_irc_log, generate, write_ndjson
from .machine import machine, versions
from .measure import Figure, Results, peak_rss_self

HERE = Path(__file__).parent
STAGES = ["append", "read", "projections", "search", "api", "replay", "freshness", "ranged"]
# stage -> module in bench/ with run(spec, workdir, results, ctx)
STAGE_MODULES = {"append": "bench.stages", "read": "bench.stages", "projections": "bench.projections",
                 "search": "bench.search", "api": "bench.api", "replay": "bench.api", "freshness": "bench.freshness",
                 "ranged": "bench.ranged"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["corpus"]:
        return corpus_command(argv[1:])
    if argv[:1] == ["report"]:
        return report_command(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                     epilog="\n".join(__doc__.split("\n")[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="100k", help="corpus size (default 100k)")
    parser.add_argument("--only", default=",".join(STAGES), help=f"comma-separated stages (default all: {','.join(STAGES)})")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/chat-archive-bench"),
                        help="where stores, indexes and servers live during the run")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL figures")
    parser.add_argument("--light", action="store_true",
                        help="append: only the store and raw sqlite3 (no indexed raw, no ordered-ids store): for 10m")
    parser.add_argument("--search-from-corpus", action="store_true",
                        help="search: index the generated corpus directly instead of the store's log (no store needed)")
    parser.add_argument("--irc-log", metavar="FILE", help="use a real IRC-style log as the corpus instead "
                        "([HH:MM] <nick> text, === nick joined/left); results are saved under the size 'irc'")
    parser.add_argument("--irc-room", default="irc@conference.example.org", help="room JID for --irc-log")
    parser.add_argument("--irc-date", default="2024-01-01", help="date of the log's first line (YYYY-MM-DD)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default bench/RESULTS.md for 1m, bench/RESULTS-<size>.md otherwise)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.out = args.out or default_out(args.size if not args.irc_log else "irc")
    unknown = set(only) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}; stages: {', '.join(STAGES)}")

    spec = CorpusSpec.for_size(args.size, seed=args.seed)
    size = args.size
    if args.irc_log:
        spec, size = from_irc_log(args.irc_log, args.irc_room, args.irc_date), "irc"
    workdir = args.workdir / size
    res = Results(size=size)
    ctx: dict = {"postgres": not args.no_postgres, "light": args.light, "search_from_corpus": args.search_from_corpus}
    load_start = report.loadavg()
    print(f"bench: {spec.events:,} events, {spec.rooms} rooms, {spec.users} users, workdir {workdir}", flush=True)
    code_commit = _git_commit()
    # Only runs that write their report into bench/ update the saved runs (bench/results/<size>.json):
    # an experiment written elsewhere (--out /tmp/x.md) leaves the published figures alone.
    keep = args.out.resolve().parent == HERE.resolve()
    # A run of every stage replaces the saved run of its size; a run of some (--only) updates it.
    fresh = set(only) == set(STAGES)
    for stage in [s for s in STAGES if s in only]:
        module = importlib.import_module(STAGE_MODULES[stage])
        started = time.perf_counter()
        print(f"[{stage}]", flush=True)
        try:
            getattr(module, f"run_{stage}")(spec, workdir, res, ctx)
        except Exception as e:  # noqa: BLE001 - one failing stage must not lose the others' figures
            res.notes.append(f"stage `{stage}` failed: {type(e).__name__}: {e}")
            print(f"  stage {stage} failed: {type(e).__name__}: {e}", flush=True)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        res.rss["bench driver (corpus generation, in-process stores and index)"] = peak_rss_self()
        run = {"command": f"python -m bench {' '.join(argv)}".strip(), "load": [load_start, report.loadavg()],
               "machine": machine(), "versions": versions("host=127.0.0.1 user=postgres dbname=postgres"),
               "events": spec.events, "commit": code_commit, "results": msgspec.to_builtins(res)}
        if keep:  # after every stage: a long run's figures survive a later failure
            save_run(res.size, merged(load_run(res.size) if not fresh else None, run))
            fresh = False
    if keep:
        write_report(res.size, args.out)
    else:
        report.write(args.out, report.render(res, run["machine"], run["versions"], command=run["command"],
                                             load=tuple(run["load"]), commit=code_commit))
    print(f"wrote {args.out}")
    return 0


def _git_commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "-C", str(HERE), "log", "-1", "--format=%h %cI"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def default_out(size: str) -> Path:
    """1m is the published full run (bench/RESULTS.md); other sizes get a file of their own."""
    return HERE / ("RESULTS.md" if size == "1m" else f"RESULTS-{size}.md")


def save_run(size: str, run: dict) -> None:
    """Each size's latest run (bench/results/<size>.json): for the report and the scale table."""
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{size}.json").write_text(json.dumps(run, indent=1, ensure_ascii=False))


def merged(old: dict | None, new: dict) -> dict:
    """``new``'s figures replace ``old``'s of the same name; ``old``'s others are kept."""
    if old is None or old.get("events") != new["events"]:
        return new
    key = lambda f: (f["group"], f["name"])  # noqa: E731
    figures = {key(f): f for f in old["results"]["figures"]}
    for f in new["results"]["figures"]:
        figures[key(f)] = f  # dicts keep first-insertion order: old figures first, new ones after
    ordered = list(figures.values())
    results = {**new["results"], "figures": ordered,
               "rss": {k: max(old["results"]["rss"].get(k, 0), new["results"]["rss"].get(k, 0))  # peaks
                       for k in {**old["results"]["rss"], **new["results"]["rss"]}},
               "notes": list(dict.fromkeys(old["results"]["notes"] + new["results"]["notes"]))}
    return {**new, "command": _then(old["command"], new["command"]),
            "commit": _then(old.get("commit", "not recorded"), new.get("commit", "not recorded")), "load": [old["load"][0], new["load"][1]], "results": results}


def _then(history: str, latest: str) -> str:
    """``a; then b`` histories of commands and commits, without repeating the last one."""
    return history if history.split("; then ")[-1] == latest else f"{history}; then {latest}"


def load_run(size: str) -> dict | None:
    path = HERE / "results" / f"{size}.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_report(size: str, out: Path) -> None:
    run = load_run(size)
    res = msgspec.convert(run["results"], Results)
    text = report.render(res, run["machine"], run["versions"], command=run["command"], load=tuple(run["load"]),
                         commit=run.get("commit", "not recorded"), scale_notes=scale_section())
    report.write(out, text)


def scale_section() -> str:
    """A table of every figure across the sizes measured so far, then the hand-written scale notes."""
    runs = {}
    for size in [*SIZES, "irc"]:
        run = load_run(size)
        if run:
            runs[size] = {f"{f['group']}: {f['name']}": f for f in run["results"]["figures"]}
    if not runs:
        return ""
    names = list(dict.fromkeys(name for figs in runs.values() for name in figs))
    lines = ["## Scale: each figure by corpus size (value, ratio to its same-run baseline)", "",
             "| figure | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for name in names:
        cells = []
        for figs in runs.values():
            f = figs.get(name)
            ratio = msgspec.convert(f, Figure).ratio if f else None
            cells.append("-" if f is None else f"{_short(f['value'])} {f['unit']}" + (f" ({ratio:.2f})" if ratio else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = HERE / "SCALE-NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text(encoding="utf-8").strip()]
    return "\n".join(lines)


def _short(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def report_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report",
                                     description="re-render a results file from the saved run of a size")
    parser.add_argument("--size", choices=[*SIZES, "irc"], default="1m")
    parser.add_argument("--out", type=Path, default=None, help="default: as for a run of that size")
    args = parser.parse_args(argv)
    args.out = args.out or default_out(args.size)
    if load_run(args.size) is None:
        parser.error(f"no saved run of size {args.size} in {HERE / 'results'}")
    write_report(args.size, args.out)
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
