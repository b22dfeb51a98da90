"""What a bench run is made of, and the saved runs behind a results file.

A results file (bench/RESULTS.md) is rendered from a saved file (bench/results/RESULTS.json): the runs
that measured it (command, commit, load at start, machine) and, per corpus size, the stages with the
figures each measured. A run of some stages (``--only``) replaces those stages whole (their figures,
notes and peak memory) and keeps the others, each stage still naming the run that measured it, so a
file assembled from several runs says which stage came from which; a run of every stage replaces the
size whole. Runs no stage names any more are dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from .files import write
from .measure import Results

# stage -> (module in bench/ with run_<stage>(spec, workdir, results, ctx), once per store?)
STAGES = {
    "append": ("bench.stages", False),  # both stores in one pass each, beside their raw baselines
    "read": ("bench.stages", True),
    "projections": ("bench.projections", True),
    "search": ("bench.search", False),
    "api": ("bench.api", True),
    "replay": ("bench.api", True),
    "freshness": ("bench.freshness", True),
    "ranged": ("bench.ranged", False),
}
STORES = ("SQLite", "PostgreSQL")
# Measured at a run's first size only. freshness: a fresh store behind a real Prosody, nothing of the
# corpus. ranged: a store of its own whose big room has the first size's events; the claim (a page costs
# the same in a room of 1k events as in a big one) holds or not at 1M already, and a 10M-event room would
# take about five more minutes to build than the whole run can spare (see the README).
FIRST_SIZE_ONLY = {"freshness", "ranged"}


def saved_path(out: Path) -> Path:
    """The saved runs behind a results file: ``results/<its name>.json`` beside it."""
    return out.parent / "results" / f"{out.stem}.json"


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def save(path: Path, saved: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, json.dumps(saved, indent=1, ensure_ascii=False))


def sizes_of(saved: dict) -> dict[str, Results]:
    return {size: msgspec.convert(res, Results) for size, res in saved["sizes"].items()}


def merge(old: dict | None, run: dict, new: dict[str, Results], *, whole: bool) -> dict:
    """``old`` with ``run`` added and its measured sizes' stages in place of the same stages.

    ``whole``: the run measured every stage, so each of its sizes replaces that size entirely. A size
    measured on another corpus (another seed, another log) is replaced entirely too.
    """
    runs = list(old["runs"]) if old else []
    sizes = sizes_of(old) if old else {}
    index = len(runs)
    runs.append(run)
    for size, res in new.items():
        for stage in res.stages:
            stage.run = index
        before = sizes.get(size)
        if whole or before is None or before.corpus != res.corpus:
            sizes[size] = res
            continue
        replaced = {stage.key for stage in res.stages}
        before.stages = [s for s in before.stages if s.key not in replaced] + res.stages
        before.figures = [f for f in before.figures if f.stage not in replaced] + res.figures
        before.notes = list(dict.fromkeys(before.notes + res.notes))
        before.rss = {**before.rss, **res.rss}
    for res in sizes.values():
        res.stages.sort(key=stage_order)
        rank = {stage.key: i for i, stage in enumerate(res.stages)}
        res.figures.sort(key=lambda f: rank.get(f.stage, len(rank)))  # stable: a stage's own order kept
    return _pruned(runs, sizes)


def stage_order(stage) -> tuple[int, int]:
    names = list(STAGES)
    return (names.index(stage.stage) if stage.stage in names else len(names),
            STORES.index(stage.store) + 1 if stage.store in STORES else 0)


def _pruned(runs: list[dict], sizes: dict[str, Results]) -> dict:
    used = sorted({stage.run for res in sizes.values() for stage in res.stages})
    renumber = {old: new for new, old in enumerate(used)}
    for res in sizes.values():
        for stage in res.stages:
            stage.run = renumber[stage.run]
    return {"runs": [runs[i] for i in used], "sizes": {size: msgspec.to_builtins(res) for size, res in sizes.items()}}
