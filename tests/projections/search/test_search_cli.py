"""`chat-archive search`, run as a real process over an index built from a SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive.application import open_event_store
from chat_archive.bootstrap import search_projection
from chat_archive.config import load_config
from projections.search import SearchIndexer
from tests.factories import message

CLI = [str(Path(sys.executable).with_name("chat-archive"))]


@pytest.fixture
def env(tmp_path, index_root):
    env = {
        **os.environ,
        "CHAT_ARCHIVE_STORE_URL": f"sqlite:///{tmp_path}/events.sqlite",
        "CHAT_ARCHIVE_INDEX_PATH": str(index_root / "index"),
    }
    store = open_event_store(env["CHAT_ARCHIVE_STORE_URL"])
    store.append(
        [message(i, f"deploying build {i}", nick="alice") for i in range(3)]
        + [message(5, "<b>deployed</b> & done", nick="bob", room="dev@conference.localhost")]
    )
    config = load_config(environ=env)
    SearchIndexer(store, search_projection(config), commit_interval=0.25).catch_up()
    store.append([message(9, "not indexed yet")])
    store.close()
    return env


def run(env, *args):
    return subprocess.run([*CLI, "search", *args], capture_output=True, text=True, env=env, timeout=60)


def test_json_results(env):
    result = run(env, "deploy*", "--json", "--sort", "oldest", "--limit", "2")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total"] == 4
    assert [h["body"] for h in data["hits"]] == ["deploying build 0", "deploying build 1"]
    assert data["next_cursor"]
    assert {f["value"]: f["count"] for f in data["facets"]["senders"]} == {"alice": 3, "bob": 1}
    assert "position 4 of 5" in result.stderr  # the index is behind the log: said, not hidden


def test_text_results_limited_to_a_room(env):
    result = run(env, "deployed", "--room", "dev@conference.localhost")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "<bob>  <b>*deployed*</b> & done" in lines[0]
    assert lines[1].startswith("1 matching message,")


def test_a_syntax_error_points_at_the_fault(env):
    result = run(env, 'deploy "unfinished')
    assert result.returncode == 2  # a bad argument
    assert "unterminated quote at position 7" in result.stderr
    assert "Traceback" not in result.stderr
    assert '         ^' in result.stderr


def test_a_cursor_this_search_did_not_return_is_a_bad_argument(env):
    result = run(env, "deploy*", "--cursor", "garbage")
    assert result.returncode == 2 and "the cursor is not one this search returned" in result.stderr
    assert "Traceback" not in result.stderr


def test_room_takes_the_forms_room_takes_in_the_query(env):
    def rooms_of(*args):
        result = run(env, "deploy*", "--json", *args)
        assert result.returncode == 0, result.stderr
        return {hit["room"] for hit in json.loads(result.stdout)["hits"]}

    assert rooms_of("--room", "dev") == {"dev@conference.localhost"}  # a bare name, as room:dev
    assert rooms_of("--room", "DEV@conference.localhost") == {"dev@conference.localhost"}
    assert rooms_of("--room", "dev", "--room", "lobby") == {"dev@conference.localhost", "lobby@conference.localhost"}


def test_a_room_that_does_not_exist_is_an_error_not_zero_hits(env):
    for given in ("lobyy", "lobby@elsewhere.localhost"):
        result = run(env, "deploy*", "--room", given)
        assert result.returncode == 1
        assert f"no archived room {given!r}" in result.stderr and "lobby@conference.localhost" in result.stderr
        assert result.stderr.count("dev@conference.localhost") == 1  # the store's and the index's rooms, once


def test_the_cli_has_the_same_query_caps_as_the_api(env):
    for query, complaint in ((" ".join(["deploy~2"] * 100), "prefix or fuzzy terms"), (" ".join(["w"] * 300), "256 terms"), ("(" * 40 + "a" + ")" * 40, "nests deeper")):
        result = run(env, query)
        assert result.returncode == 2 and complaint in result.stderr and "Traceback" not in result.stderr


def test_the_cli_json_says_how_exact_its_total_is(env):
    # Too few matches here for a bound; that facets (the CLI's first page) make a total exact is
    # test_time_windows' to show, where windows can be forced.
    result = run(env, "deploy*", "--json", "--sort", "newest", "--limit", "1")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["total"], data["total_relation"]) == (4, "eq")
