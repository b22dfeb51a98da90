"""Commands that write an output file (`export-log FILE`, `export -o FILE`) never truncate or replace it before
they have all of it: a failed backup must not destroy the previous one."""

from __future__ import annotations

import gzip

import pytest

from archive.application import open_event_store
from tests.cli.test_events_commands import run_cli
from tests.cli.test_moving import history

# A store the command cannot have: a SQLite file that is not there (run from the wrong directory), a PostgreSQL
# server that does not answer.
MISSING = "sqlite:///data/events.sqlite"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres?schema=nowhere"


def output_args(command: str, path) -> list[str]:
    return [str(path)] if command == "export-log" else ["--format", "jsonl", "-o", str(path)]


@pytest.mark.parametrize("store", [MISSING, UNREACHABLE])
@pytest.mark.parametrize("command", ["export-log", "export"])
def test_an_output_file_is_left_as_it_was_when_the_store_cannot_be_read(tmp_path, command, store):
    """`cd /tmp; chat-archive export-log b.gz` said "no archive at data/events.sqlite" and left b.gz empty: it
    was opened for writing before the store was."""
    previous = tmp_path / "b.gz"
    previous.write_bytes(b"precious")
    result = run_cli(command, *output_args(command, previous), store_url=store, cwd=tmp_path,
                     env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert previous.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.gz"]  # no data/, no file half written beside it


@pytest.mark.parametrize("command", ["export-log", "export"])
def test_an_output_file_is_replaced_whole_and_nothing_is_left_beside_it(store_url, tmp_path, command):
    with open_event_store(store_url) as store:
        store.append(history()[:20])
    previous = tmp_path / "out"
    previous.write_bytes(b"precious")
    result = run_cli(command, *output_args(command, previous), store_url=store_url, cwd=tmp_path,
                     env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})  # fmt: skip
    assert result.returncode == 0, result.stderr
    if command == "export-log":
        assert len(gzip.decompress(previous.read_bytes()).splitlines()) == 21  # 20 events and the trailer
    else:
        assert previous.read_bytes()[:2] == b"PK"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == ["out"]
