"""Writes bench/RESULTS.md: machine, versions, the figures table, notes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from .measure import Results, fmt


def render(results: Results, machine: dict[str, str], versions: dict[str, str], *, command: str,
           load: tuple[str, str], commit: str = "not recorded", scale_notes: str = "") -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# chat-archive benchmark results",
        "",
        f"Written by `{command}` (rendered {now}), corpus size **{results.size}**, code at commit {commit}.",
        "Every baseline was measured in the same run on the same corpus. *ratio* > 1 means chat-archive beat its",
        "baseline (for rates value/baseline, for latencies and sizes baseline/value).",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine.items()],
        f"- load average at start / end of the run: {load[0]} / {load[1]} (other processes share these cores)",
        "",
        "## Versions",
        "",
        ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        "## Figures",
        "",
        "| group | figure | value | baseline (same run) | ratio | aim |",
        "|---|---|---|---|---|---|",
    ]
    for f in results.figures:
        base = f"{fmt(f.baseline)} ({f.baseline_name})" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}" if f.ratio else "-"
        name = f.name + (f" — {f.note}" if f.note else "")
        lines.append(f"| {f.group} | {name} | {fmt(f.value)} {f.unit} | {base} | {ratio} | {f.aim} |")
    if results.rss:
        lines += ["", "## Peak memory (RSS)", "", "| process | peak RSS |", "|---|---|"]
        lines += [f"| {name} | {rss / 2**20:,.0f} MiB |" for name, rss in results.rss.items()]
    if results.notes:
        lines += ["", "## Notes from this run", ""] + [f"- {n}" for n in results.notes]
    if scale_notes:
        lines += ["", scale_notes.strip()]
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
