"""`chat-archive search` saying whether the index holds every archived event: a real process on a real
store and index, and the rule itself."""

from __future__ import annotations

from datetime import timedelta

from archive.times import utcnow
from chat_archive.commands.search import behind_note
from tests.cli.test_events_commands import run_cli
from tests.factories import at, message


def test_a_search_of_an_index_that_holds_every_event_adds_no_note(event_store, store_url, tmp_path):
    event_store.append([message(t, body=f"deploy {t}") for t in range(5)])
    env = {"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    projected = run_cli("project", "--once", store_url=store_url, cwd=tmp_path, env=env)
    assert projected.returncode == 0, projected.stderr
    found = run_cli("search", "deploy", store_url=store_url, cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    assert "5 matching messages" in found.stdout
    assert found.stderr == ""


def test_events_just_recorded_are_on_their_way_not_a_sign_of_a_stopped_indexer(event_store, store_url, tmp_path):
    """With live traffic the newest events are nearly always a moment ahead of the index."""
    now = utcnow()
    event_store.append([message(t, body=f"deploy {t}", occurred_at=now, recorded_at=now) for t in range(3)])
    found = run_cli("search", "deploy", store_url=store_url, cwd=tmp_path,
                    env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "the newest events (log positions 1-3, the last few seconds) are not searchable yet" in found.stderr
    assert "indexer running" not in found.stderr


def test_a_search_of_an_index_left_behind_says_since_when_and_what_to_do(event_store, store_url, tmp_path):
    event_store.append([message(t, body=f"deploy {t}") for t in range(5)])
    found = run_cli("search", "deploy", store_url=store_url, cwd=tmp_path,
                    env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "up to 5 events not searchable, the oldest recorded at 2024-05-01T12:00:00Z" in found.stderr
    assert "is the indexer running?" in found.stderr


def test_events_younger_than_the_indexers_pace_are_on_their_way_not_a_fault():
    assert behind_note(9, 9, None, at(0)) is None
    fresh = behind_note(9, 7, at(0), at(0) + timedelta(seconds=3))
    assert fresh == "the newest events (log positions 8-9, the last few seconds) are not searchable yet"
    stale = behind_note(9, 8, at(0), at(0) + timedelta(seconds=30))
    assert "up to 1 event not searchable" in stale and "indexer running" in stale


def test_an_index_that_committed_moments_ago_is_catching_up_not_stopped():
    """After a big import the oldest events the index lacks were recorded long ago, and the note asked whether
    the indexer was running while it was catching up, committing every few seconds."""
    busy = behind_note(900, 500, at(0), at(0) + timedelta(hours=1), at(0) + timedelta(hours=1, seconds=-3))
    assert busy.startswith("the index is catching up (its last commit 3 s ago): it has reached log position 500 of 900")
    assert "up to 400 events not searchable yet, the oldest recorded at 2024-05-01T12:00:00Z" in busy
    assert "indexer running" not in busy
    idle = behind_note(900, 500, at(0), at(0) + timedelta(hours=1), at(0) + timedelta(minutes=10))
    assert "it has not committed since 2024-05-01T12:10:00Z (is the indexer running?" in idle


def test_the_note_reads_when_the_index_last_committed(event_store, store_url, tmp_path):
    env = {"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    event_store.append([message(t, body=f"deploy {t}") for t in range(5)])
    assert run_cli("project", "--once", store_url=store_url, cwd=tmp_path, env=env).returncode == 0
    event_store.append([message(t, body=f"deploy {t}") for t in range(5, 10)])
    found = run_cli("search", "deploy", store_url=store_url, cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr
    assert "the index is catching up (its last commit " in found.stderr
