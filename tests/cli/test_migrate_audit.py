"""`migrate` and the audit trail: the source's trail is copied whole, at its numbers and links, beside the target's
own (reads made on the target), so reads on either store between two runs break neither trail nor the next run.
Both directions: SQLite to PostgreSQL and back."""

from __future__ import annotations

import gzip
from contextlib import ExitStack

import pytest
from msgspec.structs import replace

from archive.application import open_event_store
from archive.audit import record_read
from archive.codec import to_msgpack
from archive.events import AUDIT_STREAM, copied_trail
from archive.integrity import verify_integrity, write_checkpoint
from chat_archive.migration import check, copy_log, progress_file
from tests.cli.test_events_commands import run_cli
from tests.cli.test_migrate_purged import store_of
from tests.cli.test_moving import history

COPIED = copied_trail(AUDIT_STREAM)


def read(store, query: str) -> None:
    record_read(store, via="cli", endpoint="search", role="operator", query=query, results=1)


def queries(records) -> list[str]:
    return [r.event.query for r in records]


@pytest.mark.parametrize("source_kind, target_kind", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_reads_on_both_stores_between_two_migrations_keep_both_trails_whole_and_verifiable(source_kind, target_kind,
                                                                                            tmp_path):
    with ExitStack() as stack:
        source_url, source = stack.enter_context(store_of(source_kind, tmp_path / "source.sqlite"))
        target_url, target = stack.enter_context(store_of(target_kind, tmp_path / "target.sqlite"))
        source.append(history()[:40])
        for i in range(3):
            read(source, f"source {i}")
        write_checkpoint(source)  # names the source's audit head, version 3
        progress = progress_file(tmp_path, source_url, target_url)
        copy_log(source, target, progress)
        assert check(source, target).ok
        read(target, "checking the target")  # e.g. `chat-archive search` against the target
        read(source, "source 3")  # `up` still serving from the source
        write_checkpoint(source)  # the source's audit head, version 4, in the log the next run copies
        copy_log(source, target, progress)
        report = check(source, target)
        assert report.ok, report.mismatches
        assert queries(target.read_audit()) == ["checking the target"]  # the target's own reads
        assert [(r.position, r.event) for r in target.read_audit(trail=COPIED)] == [
            (r.position, r.event) for r in source.read_audit()]  # the source's, at its numbers
        copied = next(h for h in target.chain_heads() if h.stream == COPIED)
        assert copied == replace(next(h for h in source.chain_heads() if h.stream == AUDIT_STREAM), stream=COPIED)
        integrity = verify_integrity(target)  # the source's checkpoints of its trail hold in the copy
        assert integrity.ok, [str(s.broken) for s in integrity.streams if s.broken]
        # The target takes over: its checkpoints name both trails, and both verify.
        write_checkpoint(target)
        read(target, "after the move")
        assert verify_integrity(target).ok
        assert queries(target.read_audit()) == ["checking the target", "after the move"]


def test_a_copied_audit_record_removed_or_altered_in_the_target_is_found(tmp_path):
    with ExitStack() as stack:
        source_url, source = stack.enter_context(store_of("sqlite", tmp_path / "source.sqlite"))
        target_url, target = stack.enter_context(store_of("sqlite", tmp_path / "target.sqlite"))
        for i in range(4):
            read(source, f"source {i}")
        write_checkpoint(source)
        copy_log(source, target, progress_file(tmp_path, source_url, target_url))
        assert verify_integrity(target).ok
        source_records = [r.event for r in source.read_audit()]
        with target._recorder.datastore.transaction(commit=True) as c:
            c.execute("UPDATE archive_audit_copied SET state=? WHERE seq=2", (b"\x80",))
        broken = [str(s.broken) for s in verify_integrity(target).streams if s.broken]
        assert len(broken) == 1, broken
        assert broken[0].startswith(f"{COPIED}: version 2 (log position 2): stored bytes or link altered"), broken
        with target._recorder.datastore.transaction(commit=True) as c:
            c.execute("UPDATE archive_audit_copied SET state=? WHERE seq=2", (to_msgpack(source_records[1]),))
            c.execute("DELETE FROM archive_audit_copied WHERE seq=4")
        broken = [str(s.broken) for s in verify_integrity(target).streams if s.broken]
        # The source's checkpoint names its own trail, which is the copy here: the copy's last record is missing.
        assert len(broken) == 1 and broken[0].startswith(f"{COPIED}: ") and "deleted" in broken[0], broken
        assert "4" in broken[0].removeprefix(COPIED), broken


def test_migrate_runs_again_after_a_search_on_the_target(store_url, tmp_path):
    """The operator's steps in DEPLOY: migrate, look at the target, stop `up`, migrate once more."""
    source = f"sqlite:///{tmp_path}/old/events.sqlite"
    with open_event_store(source) as store:
        store.append(history())
    index = {"CHAT_ARCHIVE_INDEX_PATH": f"{tmp_path}/data/index-migrated"}
    first = run_cli("migrate", "--to", store_url, "--quiet", store_url=source, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    found = run_cli("search", "deploy", store_url=store_url, cwd=tmp_path, env=index)
    assert found.returncode == 0, found.stderr
    assert run_cli("log", "--limit", "1", store_url=source, cwd=tmp_path).returncode == 0  # a read on the source
    again = run_cli("migrate", "--to", store_url, "--quiet", store_url=source, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 events copied (309 there already) and 1 audit record, beside the target's own trail" in again.stderr
    trail = run_cli("audit", "--json", store_url=store_url, cwd=tmp_path)
    assert trail.returncode == 0, trail.stderr
    copied = run_cli("audit", "--trail", COPIED, "--json", store_url=store_url, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert '"endpoint":"search"' in trail.stdout and '"endpoint":"log"' in copied.stdout
    assert run_cli("verify", "--integrity", store_url=store_url, cwd=tmp_path).returncode == 0



def test_export_log_holds_the_audit_trails_and_import_restores_them_verifiably(store_url, tmp_path):
    """`export-log` is a backup of the whole archive: its audit trails too, which `import` restores beside the
    restored store's own, at their numbers and links (the backup's checkpoints of them verify); an altered audit
    line is refused like an altered event."""
    source_url = f"sqlite:///{tmp_path}/source.sqlite"
    with open_event_store(source_url) as source:
        source.append(history()[:40])
        for i in range(3):
            read(source, f"source {i}")
        write_checkpoint(source)
        read(source, "source 3")
    backup = tmp_path / "backup.jsonl.gz"
    exported = run_cli("export-log", str(backup), store_url=source_url, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "4 audit records" in exported.stderr
    with open_event_store(source_url) as source:
        trail = [(r.position, r.event) for r in source.read_audit()][:4]  # export-log's own read came after
    for _ in range(2):  # a restore can be repeated: nothing twice
        imported = run_cli("import", str(backup), store_url=store_url, cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
    with open_event_store(store_url) as restored:
        assert [(r.position, r.event) for r in restored.read_audit(trail=COPIED)] == trail
        assert list(restored.read_audit()) == []  # the restored store's own trail: nothing read it yet
        integrity = verify_integrity(restored)
        assert integrity.ok, [str(s.broken) for s in integrity.streams if s.broken]
        assert next(h for h in restored.chain_heads() if h.stream == COPIED).version == 4
    lines = gzip.decompress(backup.read_bytes()).splitlines(keepends=True)
    audit_line = next(i for i, line in enumerate(lines) if b'"trail"' in line)
    for name, damaged in (
        ("altered", lines[:audit_line] + [lines[audit_line].replace(b"source 0", b"someone")] + lines[audit_line + 1:]),
        ("cut short", lines[:audit_line + 1] + lines[-1:]),
    ):
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(gzip.compress(b"".join(damaged)))
        refused = run_cli("import", str(path), store_url=f"sqlite:///{tmp_path}/{name}.sqlite", cwd=tmp_path)
        assert refused.returncode == 1 and "altered or is incomplete" in refused.stderr, (name, refused.stderr)


@pytest.mark.parametrize("kinds", [("sqlite", "postgresql", "sqlite"), ("postgresql", "sqlite", "postgresql")])
def test_a_store_migrated_again_carries_both_trails_and_the_first_stores_checkpoints_still_verify(kinds, tmp_path):
    with ExitStack() as stack:
        first_url, first = stack.enter_context(store_of(kinds[0], tmp_path / "first.sqlite"))
        second_url, second = stack.enter_context(store_of(kinds[1], tmp_path / "second.sqlite"))
        third_url, third = stack.enter_context(store_of(kinds[2], tmp_path / "third.sqlite"))
        first.append(history()[:20])
        read(first, "on the first")
        write_checkpoint(first)  # names the first store's trail as chat-archive:audit
        copy_log(first, second, progress_file(tmp_path, first_url, second_url))
        read(second, "on the second")
        copy_log(second, third, progress_file(tmp_path, second_url, third_url))
        report = check(second, third)
        assert report.ok, report.mismatches
        assert queries(third.read_audit(trail=COPIED)) == ["on the second"]
        assert queries(third.read_audit(trail=copied_trail(COPIED))) == ["on the first"]
        integrity = verify_integrity(third)
        assert integrity.ok, [str(s.broken) for s in integrity.streams if s.broken]
        assert {s.stream for s in integrity.streams} >= {COPIED, copied_trail(COPIED)}
        assert third.audit_trails() == [COPIED, copied_trail(COPIED)]  # the own trail holds no record yet


def test_a_target_an_earlier_version_migrated_into_gets_the_sources_trail_whole_by_running_migrate_again(tmp_path):
    """An earlier `migrate` appended the source's records to the target's own trail (DEPLOY: running this version's
    once more copies the source's trail whole beside it, and both check and verify)."""
    with ExitStack() as stack:
        source_url, source = stack.enter_context(store_of("sqlite", tmp_path / "source.sqlite"))
        target_url, target = stack.enter_context(store_of("postgresql", tmp_path / "target.sqlite"))
        source.append(history()[:20])
        for i in range(3):
            read(source, f"source {i}")
        write_checkpoint(source)
        for record in source.read_audit():  # what the earlier version did
            target.append_audit(record.event)
        read(target, "on the target")
        copy_log(source, target, progress_file(tmp_path, source_url, target_url))
        report = check(source, target)
        assert report.ok, report.mismatches
        assert queries(target.read_audit(trail=COPIED)) == ["source 0", "source 1", "source 2"]
        integrity = verify_integrity(target)
        assert integrity.ok, [str(s.broken) for s in integrity.streams if s.broken]
