"""The bench's saved runs and the results file rendered from them: a file says which run measured what."""

from __future__ import annotations

from pathlib import Path

from bench import runs
from bench.__main__ import HERE, parse, plan, refuse_to_publish
from bench.measure import Figure, Results, StageRun
from bench.results import render

MACHINE = {"CPU": "test", "cores": "2"}


def run_info(command: str, commit: str, load: str = "0.50 0.40 0.30") -> dict:
    return {"command": command, "commit": commit, "started": "2026-11-30 14:50 UTC", "load_start": load,
            "machine": MACHINE, "versions": {"python": "3.11"}}


def measured(size: str, stages: dict[str, list[tuple[str, float]]], corpus: str = "1,000 events") -> Results:
    """A size's results: for each stage key (``"api, PostgreSQL"``) its figures (name, value)."""
    res = Results(size=size, corpus=corpus)
    for key, figures in stages.items():
        stage, _, store = key.partition(", ")
        res.stages.append(StageRun(stage, store, load_before="0.5 0.4 0.3", load_after="1.5 0.9 0.4", seconds=3))
        res.figures += [Figure(stage, name, value, "events/s", stage=key) for name, value in figures]
    return res


def test_a_run_of_some_stages_replaces_them_whole_and_the_file_says_which_run_measured_which():
    first = runs.merge(None, run_info("python -m bench --size 1m", "aaa111"), {
        "1m": measured("1m", {"append": [("store", 100.0)], "api, SQLite": [("search", 5.0), ("old name", 1.0)]}),
    }, whole=True)
    second = runs.merge(first, run_info("python -m bench --size 1m --only api", "bbb222"), {
        "1m": measured("1m", {"api, SQLite": [("search", 7.0)]}),
    }, whole=False)

    res = runs.sizes_of(second)["1m"]
    assert [(f.stage, f.name, f.value) for f in res.figures] == [("append", "store", 100.0), ("api, SQLite", "search", 7.0)]
    assert {s.key: s.run for s in res.stages} == {"append": 0, "api, SQLite": 1}
    text = render(second)
    assert "**Assembled from 2 runs on 2 commits**" in text
    assert "run 1: `python -m bench --size 1m`" in text and "commit aaa111" in text
    assert "run 2: `python -m bench --size 1m --only api`" in text and "commit bbb222" in text
    assert "| 1m | append | - | 1 |" in text and "| 1m | api | SQLite | 2 |" in text


def test_a_whole_run_replaces_everything_and_the_runs_no_stage_names_are_dropped():
    first = runs.merge(None, run_info("one", "aaa111"), {"1m": measured("1m", {"append": [("store", 1.0)]})},
                       whole=True)
    second = runs.merge(first, run_info("two", "bbb222"), {"1m": measured("1m", {"read, SQLite": [("read", 2.0)]})},
                        whole=True)
    assert [r["commit"] for r in second["runs"]] == ["bbb222"]
    text = render(second)
    assert text.count("Written by one run, `two`") == 1 and "aaa111" not in text


def test_a_size_measured_on_another_corpus_is_replaced_whole():
    first = runs.merge(None, run_info("one", "a"), {"1m": measured("1m", {"append": [("store", 1.0)]})}, whole=True)
    other = measured("1m", {"read, SQLite": [("read", 2.0)]}, corpus="1,000 events, seed 7")
    res = runs.sizes_of(runs.merge(first, run_info("two", "b"), {"1m": other}, whole=False))["1m"]
    assert [s.key for s in res.stages] == ["read, SQLite"]


def test_every_figure_shows_the_load_around_its_stage_and_a_loaded_start_is_said_plainly():
    saved = runs.merge(None, run_info("one", "a", load="3.10 2.00 1.00"), {
        "1m": measured("1m", {"append": [("store", 1.0)]})}, whole=True)
    text = render(saved)
    assert "| append | store | 1 events/s | - | - |  | 0.5 → 1.5 |" in text
    assert "**The load at the start of this run was above the machine's 2 cores" in text


def test_the_scale_table_shows_each_figure_by_size_and_its_change():
    sizes = {"1m": measured("1m", {"append": [("store", 100_000.0)], "freshness, SQLite": [("idle", 300.0)],
                                   "ranged": [("page", 1.0)]}),
             "10m": measured("10m", {"append": [("store", 90_000.0)]})}
    text = render(runs.merge(None, run_info("python -m bench --size 1m,10m", "a"), sizes, whole=True))
    assert "| figure | 1m | 10m | change 10m vs 1m |" in text
    assert "| append: store | 100,000 events/s | 90,000 events/s | -10% |" in text
    assert "Not measured again at 10m: freshness, ranged." in text


def test_a_busy_machine_does_not_publish_unless_told_to_and_says_so(tmp_path: Path):
    published = HERE / "RESULTS.md"
    assert "above the 2 cores" in refuse_to_publish("3.5 2.0 1.0", 2, published, allow_load=False)
    assert refuse_to_publish("3.5 2.0 1.0", 2, published, allow_load=True) is None
    assert refuse_to_publish("3.5 2.0 1.0", 2, tmp_path / "experiment.md", allow_load=False) is None
    assert refuse_to_publish("1.9 2.0 1.0", 2, published, allow_load=False) is None


def test_sizes_are_given_as_a_list_and_measured_smallest_first():
    args = parse(["--size", "10m,1m"])
    assert args.sizes == ["1m", "10m"] and args.out == HERE / "RESULTS.md"
    assert parse(["--sizes", "100k"]).out == HERE / "RESULTS-100k.md"


def test_stages_run_on_sqlite_first_then_on_postgresql():
    assert plan(["append", "read", "api", "ranged"], postgres=True) == [
        ("append", ""), ("read", "SQLite"), ("api", "SQLite"), ("ranged", ""), ("read", "PostgreSQL"),
        ("api", "PostgreSQL")]
    assert plan(["api"], postgres=False) == [("api", "SQLite")]


def test_a_stage_failure_of_several_lines_stays_in_its_row_of_the_stages_table():
    res = measured("1m", {"append": [("store", 1.0)], "freshness, SQLite": []})
    res.stages[1].failed = "RuntimeError: flood clients did not start (exit 2): usage: flood.py [-h]\n    [--rate RATE]\n| x"
    text = render(runs.merge(None, run_info("one", "a"), {"1m": res}, whole=True))
    row = next(line for line in text.splitlines() if line.startswith("| 1m | freshness"))
    assert "usage: flood.py [-h] [--rate RATE] \\| x | SQLite | 1 |" in row
