"""`migrate` (resumable, checked, views and index rebuilt) and `export-log` on both stores, as real processes."""

from __future__ import annotations

import gzip
import hashlib
import json
import time

import pytest

from archive import events as ev
from archive.events import copied_trail
from archive.application import open_event_store
from chat_archive.migration import check, copy_log, progress_file, read_progress
from query_api.keys import KeyStore
from query_api.roles import Role
from query_api.sessions import open_ended_sessions
from query_api.tokens import open_database, open_token_store
from tests.cli.test_events_commands import run_cli
from tests.factories import make, message

ROOMS = ("lobby@conference.localhost", "dev@conference.localhost", "ops@conference.localhost")


def history() -> list[ev.Event]:
    events = []
    for i in range(300):
        room = ROOMS[i % 3]
        events.append(message(i, f"note {i} about {('deploy', 'lunch', 'backup')[i % 3]}", f"u{i % 7}", room=room,
                              message_id=f"m{i}", stanza_id=f"s{i}"))  # fmt: skip
        if i % 50 == 7:
            events.append(make(ev.MessageCorrected, i, room=room, nick=f"u{i % 7}", replaces_id=f"m{i}", body=f"fixed {i}"))
    return [make(ev.OccupantJoined, 0, room=room, nick="u0") for room in ROOMS] + events


def without_positions(log_text: str) -> list[dict]:
    return [json.loads(line)["event"] for line in log_text.splitlines()]


@pytest.fixture
def source(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/old/events.sqlite"
    with open_event_store(url) as store:
        store.append(history())
    assert run_cli("log", "--limit", "1", store_url=url, cwd=tmp_path).returncode == 0  # an audit record to carry
    return url


class FailingAfter:
    """A target store whose appends fail after ``pages`` of them: an interrupted migration."""

    def __init__(self, store, pages: int):
        self.store, self.pages = store, pages

    def append_copies(self, copies, chains, marks=None):
        if self.pages == 0:
            raise KeyboardInterrupt
        self.pages -= 1
        return self.store.append_copies(copies, chains, marks)

    def __getattr__(self, name):  # the store's other methods, as they are
        return getattr(self.store, name)


def test_migrate_resumes_after_an_interruption_checks_and_rebuilds(source, store_url, tmp_path):
    progress = progress_file(tmp_path / "data", source, store_url)
    with open_event_store(source) as old, open_event_store(store_url) as new:
        with pytest.raises(KeyboardInterrupt):
            copy_log(old, FailingAfter(new, 2), progress, page_size=100)
        assert read_progress(progress) > 0 and new.head() > 0
        assert not check(old, new).ok  # half a copy is not a copy
    result = run_cli("migrate", "--to", store_url, store_url=source, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "counts and chain heads match" in result.stderr and "migrate: copy log [" in result.stderr
    assert not progress.exists()
    with open_event_store(source) as old, open_event_store(store_url) as new:
        assert check(old, new).ok
        # the source's audit trail came along, beside the target's own (empty: nothing read the target yet)
        assert [r.event.endpoint for r in new.read_audit(trail=copied_trail(ev.AUDIT_STREAM))] == ["log"]
        assert list(new.read_audit()) == []
    again = run_cli("migrate", "--to", store_url, "--quiet", store_url=source, cwd=tmp_path)
    assert again.returncode == 0 and "0 events copied" in again.stderr, again.stderr  # nothing twice
    old_log = run_cli("log", store_url=source).stdout
    assert without_positions(run_cli("log", store_url=store_url).stdout) == without_positions(old_log)
    # views and index were rebuilt for the target: the transcript and search work there at once
    index = f"{tmp_path}/data/index-migrated"
    found = run_cli("search", "deploy", "--json", store_url=store_url, cwd=tmp_path, env={"CHAT_ARCHIVE_INDEX_PATH": index})
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["total"] == 98  # 100 said it, 2 of those were corrected


def test_migrate_refuses_its_own_store_and_bad_urls(source, tmp_path):
    assert "already" in run_cli("migrate", "--to", source, store_url=source, cwd=tmp_path).stderr
    bad = run_cli("migrate", "--to", "mysql://x", store_url=source, cwd=tmp_path)
    assert bad.returncode == 2 and "scheme" in bad.stderr and "Traceback" not in bad.stderr


def test_export_log_writes_compressed_json_lines_with_a_checked_trailer(store_url, tmp_path):
    with open_event_store(store_url) as store:
        store.append(history())
        heads = [[h.stream, h.version, h.link, h.genesis_version] for h in store.chain_heads()]
    path = tmp_path / "backup.jsonl.gz"
    result = run_cli("export-log", str(path), store_url=store_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    trailer = json.loads(lines[-1])
    assert trailer == {"sha256": hashlib.sha256(b"".join(lines[:-1])).hexdigest(), "count": len(history()),
                       "heads": heads, "copied_checkpoints": {}}
    backup = [json.loads(line) for line in lines[:-1]]
    assert [{"position": b["position"], "event": b["event"]} for b in backup] == [
        json.loads(line) for line in run_cli("log", store_url=store_url).stdout.splitlines()]
    assert [b["version"] for b in backup if b["event"]["room"] == ROOMS[0]] == list(range(1, 1 + 1 + 100 + 2))


@pytest.mark.parametrize("command", ["export-log", "export"])
def test_a_backup_or_export_to_a_place_it_cannot_write_is_a_message_not_a_traceback(store_url, tmp_path, command):
    with open_event_store(store_url) as store:
        store.append(history())
    env = {"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")}
    for place in (tmp_path / "no such directory" / "out", tmp_path):  # missing, a directory
        args = [str(place)] if command == "export-log" else ["-o", str(place)]
        result = run_cli(command, *args, store_url=store_url, cwd=tmp_path, env=env)
        assert result.returncode == 1, result.stderr
        assert f"cannot write {place}" in result.stderr and "Traceback" not in result.stderr


def test_an_export_to_standard_output_is_refused_not_written_to_a_file_named_dash(store_url, tmp_path):
    """`export-log -` and `import -` mean standard output and input; `export -o -` wrote a ZIP named `-`
    in the working directory and said "wrote -"."""
    with open_event_store(store_url) as store:
        store.append(history())
    result = run_cli("export", "--format", "jsonl", "-o", "-", store_url=store_url, cwd=tmp_path,
                     env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "standard output" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "-").exists()


def test_export_log_then_import_is_a_round_trip_and_a_damaged_backup_imports_nothing(store_url, tmp_path):
    source = f"sqlite:///{tmp_path}/source.sqlite"
    with open_event_store(source) as store:
        store.append(history())
    backup = tmp_path / "backup.jsonl.gz"
    assert run_cli("export-log", str(backup), store_url=source, cwd=tmp_path).returncode == 0
    imported = run_cli("import", str(backup), store_url=store_url, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert f"restored {len(history())} new events" in imported.stdout
    assert run_cli("log", store_url=store_url).stdout == run_cli("log", store_url=source).stdout
    lines = gzip.decompress(backup.read_bytes()).splitlines(keepends=True)
    for name, damaged in (
        ("altered", b"".join(lines[:5] + [lines[5].replace(b"note", b"nope")] + lines[6:])),
        ("cut short", b"".join(lines[:10] + lines[-1:])),
    ):
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(gzip.compress(damaged))
        refused = run_cli("import", str(path), store_url=f"sqlite:///{tmp_path}/{name}.sqlite", cwd=tmp_path)
        assert refused.returncode == 1 and "altered or is incomplete" in refused.stderr, (name, refused.stderr)
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(backup.read_bytes()[:200])
    broken = run_cli("import", str(truncated), store_url=f"sqlite:///{tmp_path}/t.sqlite", cwd=tmp_path)
    assert broken.returncode == 1 and "cannot read it" in broken.stderr and "Traceback" not in broken.stderr


def test_migrate_carries_tokens_signing_keys_and_sign_outs(source, store_url, tmp_path):
    """API clients keep their tokens, signed cursors and sessions keep verifying, and a session
    signed out before the move stays refused after it."""
    tokens = open_token_store(source)
    token, info = tokens.create(Role.COMPLIANCE, label="auditor")
    _, revoked = tokens.create(Role.SITE, label="old site")
    tokens.revoke(revoked.id)
    keys = KeyStore(open_database(source))
    keys.keys()
    keys.rotate()
    open_ended_sessions(source).end("signed-out-session", until=time.time() + 3600)
    for _ in range(2):  # the second run carries nothing twice
        result = run_cli("migrate", "--to", store_url, "--quiet", store_url=source, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    moved = open_token_store(store_url)
    assert moved.list() == tokens.list()  # the revoked one too, still revoked
    assert moved.lookup(token).id == info.id
    assert KeyStore(open_database(store_url)).keys() == keys.keys()
    assert open_ended_sessions(store_url).ended("signed-out-session")
    assert not open_ended_sessions(store_url).ended("another-session")
