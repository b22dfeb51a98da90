"""Renders a results file (bench/RESULTS.md) from its saved runs (see bench/runs.py): which run measured
what on which commit, the load around every stage, the figures of each size, and how each changes with size."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from .corpus import SIZES
from .measure import Figure, Results, fmt
from .runs import sizes_of

MARK = "⚠"


def render(saved: dict, *, notes: str = "") -> str:
    runs = saved["runs"]
    sizes = dict(sorted(sizes_of(saved).items(), key=lambda item: _size_rank(item[0])))
    cores = int(runs[-1]["machine"]["cores"])
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# chat-archive benchmark results", "", *_provenance(runs, sizes, now), ""]
    loaded = [i for i, run in enumerate(runs) if load1(run["load_start"]) > cores]
    if loaded:
        which = "this run" if len(runs) == 1 else ", ".join(f"run {i + 1}" for i in loaded)
        lines += [f"**The load at the start of {which} was above the machine's {cores} cores: its figures are "
                  "comparable only to their same-run baselines (the ratios), not as absolute results.**", ""]
    lines += [
        "Every baseline was measured in the same run on the same corpus. *ratio* > 1 means chat-archive beat its",
        "baseline (for rates value/baseline, for latencies and sizes baseline/value). *load* is the 1-minute load",
        f"average at the start and end of the stage that measured the figure ({MARK}: above the {cores} cores; the",
        "bench's own previous stage counts in it).",
        "", "## Machine", "",
        *[f"- {k}: {v}" for k, v in runs[-1]["machine"].items()],
        "", "## Versions", "",
        ", ".join(f"{k} {v}" for k, v in runs[-1]["versions"].items()),
        "", "## Stages", "",
        "| size | stage | store | run | load (1, 5, 15 min) before | after | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, res in sizes.items():
        for stage in res.stages:
            failed = f" — **failed**: {_in_a_cell(stage.failed)}" if stage.failed else ""
            lines.append(f"| {size} | {stage.stage}{failed} | {stage.store or '-'} | {stage.run + 1} | "
                         f"{_load(stage.load_before, cores)} | {_load(stage.load_after, cores)} | {stage.seconds:,.0f} s |")
    for size, res in sizes.items():
        lines += ["", f"## Figures at {size} ({res.corpus})", "",
                  "| group | figure | value | baseline (same run) | ratio | aim | load |",
                  "|---|---|---|---|---|---|---|"]
        stages = {stage.key: stage for stage in res.stages}
        for f in res.figures:
            base = f"{fmt(f.baseline)} ({f.baseline_name})" if f.baseline is not None else "-"
            ratio = f"{f.ratio:.2f}" if f.ratio else "-"
            name = f.name + (f" — {f.note}" if f.note else "")
            stage = stages.get(f.stage)
            load = f"{_load1(stage.load_before, cores)} → {_load1(stage.load_after, cores)}" if stage else "-"
            lines.append(f"| {f.group} | {name} | {fmt(f.value)} {f.unit} | {base} | {ratio} | {f.aim} | {load} |")
    if len(sizes) > 1:
        lines += ["", *scale_table(sizes)]
    lines += _memory(sizes)
    lines += _notes(sizes)
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def scale_table(sizes: dict[str, Results]) -> list[str]:
    """Every figure across the sizes, and how its value changes from each size to the next."""
    names = list(dict.fromkeys((f.group, f.name) for res in sizes.values() for f in res.figures))
    by_size = {size: {(f.group, f.name): f for f in res.figures} for size, res in sizes.items()}
    order = list(sizes)
    steps = list(zip(order, order[1:]))
    lines = ["## Scale: each figure by corpus size, and its change from one size to the next", "",
             "Value (ratio to its same-run baseline); *change* is the later size's value against the earlier's.",
             *_not_again(sizes), "",
             "| figure | " + " | ".join(order) + " | " + " | ".join(f"change {b} vs {a}" for a, b in steps) + " |",
             "|---|" + "---|" * (len(order) + len(steps))]
    for key in names:
        cells = [_cell(by_size[size].get(key)) for size in order]
        changes = [_change(by_size[a].get(key), by_size[b].get(key)) for a, b in steps]
        lines.append(f"| {key[0]}: {key[1]} | " + " | ".join(cells + changes) + " |")
    return lines


def _not_again(sizes: dict[str, Results]) -> list[str]:
    """Stages a later size did not measure (those whose measurement does not involve the corpus)."""
    first, *later = sizes.values()
    stages = lambda res: {stage.stage for stage in res.stages}  # noqa: E731
    return [f"Not measured again at {res.size}: {', '.join(sorted(stages(first) - stages(res)))}."
            for res in later if stages(first) - stages(res)]


def _in_a_cell(text: str) -> str:
    """``text`` as one table cell: an error may span lines (argparse's usage) and hold a "|"."""
    return " ".join(text.split()).replace("|", "\\|")


def _cell(f: Figure | None) -> str:
    if f is None:
        return "-"
    return f"{fmt(f.value)} {f.unit}" + (f" ({f.ratio:.2f})" if f.ratio else "")


def _change(a: Figure | None, b: Figure | None) -> str:
    if a is None or b is None or not a.value:
        return "-"
    return f"{(b.value / a.value - 1) * 100:+.0f}%"


def _provenance(runs: list[dict], sizes: dict[str, Results], now: str) -> list[str]:
    sized = ", ".join(f"**{size}** ({res.corpus})" for size, res in sizes.items())
    if len(runs) == 1:
        run = runs[0]
        return [f"Written by one run, `{run['command']}`, started {run['started']} at load {run['load_start']} "
                f"(rendered {now}), on code at commit {run['commit']}. Corpus: {sized}."]
    commits = sorted({run["commit"] for run in runs})
    return [f"**Assembled from {len(runs)} runs on {len(commits)} commit{'s' if len(commits) > 1 else ''}** "
            f"(rendered {now}); the stage table says which run measured each stage. Corpus: {sized}.", "",
            *[f"- run {i + 1}: `{run['command']}`, started {run['started']} at load {run['load_start']}, "
              f"commit {run['commit']}" for i, run in enumerate(runs)]]


def _memory(sizes: dict[str, Results]) -> list[str]:
    rows = [(size, stage.key, name, rss) for size, res in sizes.items()
            for stage in res.stages for name, rss in stage.rss.items()]
    rows += [(size, "-", name, rss) for size, res in sizes.items() for name, rss in res.rss.items()]
    if not rows:
        return []
    return ["", "## Peak memory (RSS)", "", "| size | stage | process | peak RSS |", "|---|---|---|---|",
            *[f"| {size} | {stage} | {name} | {rss / 2**20:,.0f} MiB |" for size, stage, name, rss in rows]]


def _notes(sizes: dict[str, Results]) -> list[str]:
    rows = [f"- {size}, {stage.key}: {note}" for size, res in sizes.items() for stage in res.stages
            for note in stage.notes]
    rows += [f"- {size}: {note}" for size, res in sizes.items() for note in res.notes]
    return ["", "## Notes from the runs", "", *rows] if rows else []


def _size_rank(size: str) -> int:
    return SIZES.get(size, 10**12)


def load1(load: str) -> float:
    try:
        return float(load.split()[0])
    except (ValueError, IndexError):
        return 0.0


def _load(load: str, cores: int) -> str:
    return f"{load} {MARK}" if load1(load) > cores else load or "-"


def _load1(load: str, cores: int) -> str:
    first = load.split()[0] if load else "-"
    return f"{first} {MARK}" if load1(load) > cores else first


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
