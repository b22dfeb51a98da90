"""The bench's workdir markers: a workdir seeded with hard links of another's (``cp -al``) reuses its
store, and the bench never writes into the other workdir's files through those links."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from bench.corpus import CorpusSpec
from bench.files import open_new, write
from bench.stages import MARKER, ensure_store

SPEC = CorpusSpec(events=300, rooms=2, users=6)


def built(workdir: Path, spec: CorpusSpec = SPEC) -> CorpusSpec:
    """The store of ``spec`` in ``workdir``, as a bench run there builds it (its corpus kept in the workdir)."""
    spec = dataclasses.replace(spec, cache=str(workdir))
    ensure_store(spec, workdir, {})
    return spec


def seeded(source: Path, workdir: Path) -> None:
    """``cp -al source workdir``: every file a hard link of the source's."""
    workdir.mkdir()
    for path in sorted(source.rglob("*")):
        target = workdir / path.relative_to(source)
        target.mkdir(parents=True) if path.is_dir() else os.link(path, target)


def test_a_workdir_seeded_with_hard_links_of_another_reuses_its_store(tmp_path, capsys):
    built(tmp_path / "lead")
    seeded(tmp_path / "lead", tmp_path / "mine")
    capsys.readouterr()

    built(tmp_path / "mine")

    assert "building" not in capsys.readouterr().out
    assert (tmp_path / "mine/events.sqlite").stat().st_ino == (tmp_path / "lead/events.sqlite").stat().st_ino


def test_a_store_rebuilt_in_a_seeded_workdir_leaves_the_other_workdirs_marker_alone(tmp_path):
    built(tmp_path / "lead")
    theirs = (tmp_path / "lead" / MARKER).read_text()
    seeded(tmp_path / "lead", tmp_path / "mine")

    built(tmp_path / "mine", dataclasses.replace(SPEC, seed=7))

    assert (tmp_path / "lead" / MARKER).read_text() == theirs
    assert "seed=7" in (tmp_path / "mine" / MARKER).read_text()


def test_a_marker_written_before_with_the_cache_directory_still_names_its_corpus(tmp_path, capsys):
    spec = built(tmp_path / "lead")
    (tmp_path / "lead" / MARKER).write_text(f"{spec}\n")  # the old format: the spec with its cache directory
    seeded(tmp_path / "lead", tmp_path / "mine")
    capsys.readouterr()

    built(tmp_path / "mine")

    assert "building" not in capsys.readouterr().out


def test_files_the_bench_writes_replace_a_hard_link_instead_of_writing_through_it(tmp_path):
    (tmp_path / "theirs.toml").write_text("theirs")
    (tmp_path / "theirs.log").write_text("their log")
    os.link(tmp_path / "theirs.toml", tmp_path / "mine.toml")
    os.link(tmp_path / "theirs.log", tmp_path / "mine.log")

    write(tmp_path / "mine.toml", "mine")
    with open_new(tmp_path / "mine.log") as log:
        log.write("my log")

    assert (tmp_path / "theirs.toml").read_text() == "theirs"
    assert (tmp_path / "mine.toml").read_text() == "mine"
    assert (tmp_path / "theirs.log").read_text() == "their log"
    assert (tmp_path / "mine.log").read_text() == "my log"
