"""A copied audit trail (``archive.copied_trails``) holds another store's trail only: a checkpoint goes to a copy only
when it came from that copy's store (the store's own checkpoints stay with its own trail, even where a copy holds
the same links), and a copy goes on only with the trail it was copied from. Both stores."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import pytest

from archive.application import open_event_store
from archive.audit import record_read
from archive.events import AUDIT_STREAM, copied_trail
from archive.integrity import verify_integrity, write_checkpoint
from chat_archive.migration import copy_log, progress_file
from tests.archive.test_integrity import run_sql
from tests.cli.test_events_commands import run_cli
from tests.cli.test_migrate_purged import store_of
from tests.cli.test_moving import history

COPIED = copied_trail(AUDIT_STREAM)


def read(store, query: str) -> None:
    record_read(store, via="cli", endpoint="search", role="operator", query=query, results=1)


def broken(store) -> list[str]:
    return [str(s.broken) for s in verify_integrity(store).streams if s.broken]


def trail(store, name: str) -> list[tuple[int, str]]:
    return [(r.position, r.event.query) for r in store.read_audit(trail=name)]


@contextmanager
def migrated(kinds: tuple[str, str], tmp_path, checkpoint: bool = False):
    """A first store with 3 reads (and a checkpoint of them), migrated into a second: (url, store) of each."""
    with ExitStack() as stack:
        first_url, first, second_url, second = read_first(stack, kinds, tmp_path, checkpoint)
        copy_log(first, second, progress_file(tmp_path, first_url, second_url))
        yield first_url, first, second_url, second


def read_first(stack: ExitStack, kinds: tuple[str, str], tmp_path, checkpoint: bool) -> tuple:
    """Two stores of ``kinds`` (closed with ``stack``), the first holding 20 events and 3 reads (and a checkpoint
    of them): (url, store) of each."""
    first_url, first = stack.enter_context(store_of(kinds[0], tmp_path / "first.sqlite"))
    second_url, second = stack.enter_context(store_of(kinds[1], tmp_path / "second.sqlite"))
    first.append(history()[:20])
    for i in range(3):
        read(first, f"first {i}")
    if checkpoint:
        write_checkpoint(first)
    return first_url, first, second_url, second


def test_a_copy_of_the_stores_own_trail_does_not_take_its_checkpoints(store_url):
    """Nothing says a checkpoint came from another store but a migration's or a restore's own record: a copy holding
    the same links as the store's own trail (made behind the store's back) does not hide its deleted records."""
    with open_event_store(store_url) as store:
        for i in range(5):
            read(store, f"read {i}")
        write_checkpoint(store)
    run_sql(store_url, f"INSERT INTO archive_audit_copied SELECT '{COPIED}', seq, at, state, link FROM archive_audit")
    run_sql(store_url, "DELETE FROM archive_audit WHERE seq>=3")
    with open_event_store(store_url) as store:
        problems = broken(store)
    assert len(problems) == 1 and problems[0].startswith(f"{AUDIT_STREAM}: ") and "deleted" in problems[0], problems


def test_an_idle_stores_backup_restored_into_it_leaves_its_checkpoints_with_its_own_trail(store_url, tmp_path):
    with open_event_store(store_url) as store:
        store.append(history()[:20])
        for i in range(5):
            read(store, f"read {i}")
        write_checkpoint(store)
    backup = tmp_path / "backup.jsonl.gz"
    assert run_cli("export-log", str(backup), store_url=store_url, cwd=tmp_path).returncode == 0
    restored = run_cli("import", str(backup), store_url=store_url, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    with open_event_store(store_url) as store:
        assert trail(store, COPIED) == trail(store, AUDIT_STREAM)[:5]
        assert broken(store) == []
    run_sql(store_url, "DELETE FROM archive_audit WHERE seq>=3")
    with open_event_store(store_url) as store:
        problems = broken(store)
    assert any(p.startswith(f"{AUDIT_STREAM}: ") and "deleted" in p for p in problems), problems


@pytest.mark.parametrize("kinds", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_a_backup_whose_trail_is_not_the_one_a_copy_was_made_from_is_refused_before_anything_is_written(kinds,
                                                                                                       tmp_path):
    with migrated(kinds, tmp_path) as (first_url, first, second_url, second):
        for i in range(5):
            read(second, f"second {i}")
        backup = tmp_path / "second.jsonl.gz"
        assert run_cli("export-log", str(backup), store_url=second_url, cwd=tmp_path).returncode == 0
        before = (trail(second, COPIED), second.audit_trails())
        # The backup's own trail (the second store's reads) is not the first store's, which the copy holds.
        refused = run_cli("import", str(backup), store_url=second_url, cwd=tmp_path)
        assert refused.returncode == 1, refused.stderr
        assert f"{AUDIT_STREAM}" in refused.stderr and f"{COPIED}" in refused.stderr, refused.stderr
        assert (trail(second, COPIED), second.audit_trails()) == before
        assert trail(second, COPIED) == [(1, "first 0"), (2, "first 1"), (3, "first 2")]
        assert broken(second) == []


@pytest.mark.parametrize("kinds", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_migrate_from_a_store_whose_trail_is_not_the_one_the_targets_copy_holds_is_refused_before_copying(kinds,
                                                                                                         tmp_path):
    """The first store's backup restored into a new store (whose own trail starts anew) and migrated again into the
    target of the first (the second store): the new store's reads are not the first store's."""
    with migrated(kinds, tmp_path) as (first_url, first, target_url, target):
        backup = tmp_path / "first.jsonl.gz"
        assert run_cli("export-log", str(backup), store_url=first_url, cwd=tmp_path).returncode == 0
        restored_url = f"sqlite:///{tmp_path}/restored.sqlite"
        assert run_cli("import", str(backup), store_url=restored_url, cwd=tmp_path).returncode == 0
        with open_event_store(restored_url) as restored:
            restored.append(history()[20:25])
            for i in range(5):
                read(restored, f"restored {i}")
        before = (target.head(), trail(target, COPIED), target.audit_trails())
        refused = run_cli("migrate", "--to", target_url, "--quiet", store_url=restored_url, cwd=tmp_path)
        assert refused.returncode == 1, refused.stderr
        assert f"{COPIED}" in refused.stderr, refused.stderr
        assert (target.head(), trail(target, COPIED), target.audit_trails()) == before
        assert broken(target) == []


@pytest.mark.parametrize("kinds", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_a_migrated_stores_backup_carries_which_checkpoints_came_with_its_copy(kinds, tmp_path):
    """The first store's checkpoint came to the second with its copy; restored from the second's backup, it is the
    first's still, and goes to the copy of the copy."""
    with migrated(kinds, tmp_path, checkpoint=True) as (first_url, first, second_url, second):
        read(second, "second 0")
        second.append(history()[20:25])
        write_checkpoint(second)
        backup = tmp_path / "second.jsonl.gz"
        assert run_cli("export-log", str(backup), store_url=second_url, cwd=tmp_path).returncode == 0
    restored_url = f"sqlite:///{tmp_path}/restored.sqlite"
    imported = run_cli("import", str(backup), store_url=restored_url, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    with open_event_store(restored_url) as restored:
        assert trail(restored, copied_trail(COPIED)) == [(1, "first 0"), (2, "first 1"), (3, "first 2")]
        assert broken(restored) == []
    run_sql(restored_url, f"DELETE FROM archive_audit_copied WHERE trail='{copied_trail(COPIED)}' AND seq=3")
    with open_event_store(restored_url) as restored:
        problems = broken(restored)
    assert len(problems) == 1 and problems[0].startswith(f"{copied_trail(COPIED)}: "), problems


@pytest.mark.parametrize("kinds", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_a_copied_page_and_its_checkpoints_mark_are_written_together_or_not_at_all(kinds, tmp_path):
    """The mark was written in a transaction of its own after the page's: a copy stopped between the two (killed,
    the target unreachable) left the source's checkpoints with no mark, so `verify --integrity` gave them to the
    store's own trail, and reported a break in it (the source's reads are not the target's). The mark's write made
    to fail by the target's database (a constraint), the page it marks is not written either; a run again copies
    both."""
    with ExitStack() as stack:
        first_url, first, second_url, second = read_first(stack, kinds, tmp_path, checkpoint=True)
        read(second, "second 0")  # the target's own trail: the source's checkpoint names another head of it
        if kinds[1] == "sqlite":
            run_sql(second_url, "CREATE TRIGGER refused BEFORE INSERT ON archive_copied_checkpoints "
                                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        else:
            run_sql(second_url, "ALTER TABLE archive_copied_checkpoints ADD CONSTRAINT refused CHECK (last_position < 0)")
        progress = progress_file(tmp_path, first_url, second_url)
        with pytest.raises(Exception):
            copy_log(first, second, progress)
        assert (second.head(), second.copied_checkpoints()) == (0, {}), "neither the page nor its mark"
        assert broken(second) == []
        run_sql(second_url, "DROP TRIGGER refused" if kinds[1] == "sqlite"
                else "ALTER TABLE archive_copied_checkpoints DROP CONSTRAINT refused")  # fmt: skip
        copy_log(first, second, progress)
        assert second.head() == first.head() and second.copied_checkpoints() == {COPIED: first.head()}
        assert broken(second) == []
