"""Small measuring tools shared by the benchmarks: figures, timers, percentiles, RSS."""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One row of the results table: a measured value beside its same-run baseline.

    ``higher_is_better`` decides how the ratio reads: for rates it is
    value / baseline, for latencies and sizes baseline / value, so a ratio
    above 1 always means chat-archive did better than the baseline.
    """

    group: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = True
    aim: str = ""
    note: str = ""
    stage: str = ""  # the StageRun.key that measured it (set by the driver)

    @property
    def ratio(self) -> float | None:
        if not self.baseline or not self.value:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value


@dataclass
class StageRun:
    """One stage on one store at one size: which run measured it, and the machine's load around it."""

    stage: str
    store: str = ""  # "SQLite", "PostgreSQL", or "" for a stage that covers both or neither
    run: int = 0  # index into the saved file's runs
    load_before: str = ""  # /proc/loadavg's three averages
    load_after: str = ""
    seconds: float = 0.0
    failed: str = ""
    notes: list[str] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.stage}, {self.store}" if self.store else self.stage


@dataclass
class Results:
    size: str
    corpus: str = ""  # the CorpusSpec measured (without its cache directory)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)
    stages: list[StageRun] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(f"  {figure.group}: {figure.name} = {fmt(figure.value)} {figure.unit}"
              + (f"  (baseline {figure.baseline_name} {fmt(figure.baseline)}, ratio {figure.ratio:.2f})"
                 if figure.ratio else ""), flush=True)
        return figure


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


class Stopwatch:
    """Accumulates time spent inside ``with stopwatch:`` blocks only."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def __enter__(self) -> Stopwatch:
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed += time.perf_counter() - self._t


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    # The ceil(p/100 * n)-th smallest: rounding p/100 * n + 0.5 took the largest of 100 samples for p99.
    k = max(0, min(len(ordered) - 1, math.ceil(p * len(ordered) / 100) - 1))
    return ordered[k]


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def peak_rss_self() -> int:
    """Peak resident set size of this process, bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_of(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a running process, bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def dir_bytes(path: str | os.PathLike) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total
