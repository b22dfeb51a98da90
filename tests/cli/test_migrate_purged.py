"""`migrate` of a store a purge has cut (retention or compliance): the copy keeps every stream's versions,
gaps included, so its hash chains, heads, purge records and checkpoints are the source's, it checks and
verifies, and it resumes after an interruption. Both directions: SQLite to PostgreSQL and back."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from datetime import timedelta

import pytest

from archive import chain
from archive import events as ev
from archive.application import open_event_store
from archive.errors import StoreError
from archive.events import ChainHead, PurgedSpan
from archive.integrity import verify_integrity, write_checkpoint
from archive.retention import pending_purge, purge, record_purge_applied
from archive.settings import RetentionSettings
from chat_archive.migration import check, copy_log, covered, progress_file
from projections.message_groups import message_groups
from tests.cli.test_moving import FailingAfter
from tests.factories import T0, make, message
from tests.services.postgres import fresh_schema_url

LOBBY, DEV, OPS = "lobby@conference.localhost", "dev@conference.localhost", "ops@conference.localhost"
NOW = T0 + timedelta(days=10)
DAY = 86400


@contextmanager
def store_of(kind: str, path):
    if kind == "sqlite":
        url = f"sqlite:///{path}"
        with open_event_store(url) as store:
            yield url, store
    else:
        with fresh_schema_url() as url, open_event_store(url) as store:
            yield url, store


def cut_history(store) -> None:
    """Old events of every room purged: lobby keeps its recent half, dev loses all, ops is untouched
    (kept forever); then more events on both sides of the cut and a checkpoint."""
    store.append([make(ev.OccupantJoined, 0, room=room, nick="u0") for room in (LOBBY, DEV, OPS)])
    store.append([message(i, f"old {i}", "u0", room=(LOBBY, DEV, OPS)[i % 3], stanza_id=f"o{i}") for i in range(1, 40)])
    store.append([message(9 * DAY + i, f"recent {i}", "u1", room=LOBBY, stanza_id=f"r{i}") for i in range(10)])
    purge(store, RetentionSettings(default_days=1, rooms={OPS: 0}), together=message_groups, now=NOW, by="test")
    store.append([message(9 * DAY + 100 + i, f"after {i}", "u1", room=LOBBY, stanza_id=f"a{i}") for i in range(5)])
    write_checkpoint(store)


@pytest.mark.parametrize("source_kind, target_kind", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_a_purged_store_migrates_with_its_gaps_checks_verifies_and_resumes(source_kind, target_kind, tmp_path):
    with ExitStack() as stack:
        source_url, source = stack.enter_context(store_of(source_kind, tmp_path / "source.sqlite"))
        target_url, target = stack.enter_context(store_of(target_kind, tmp_path / "target.sqlite"))
        cut_history(source)
        assert verify_integrity(source).ok
        progress = progress_file(tmp_path, source_url, target_url)
        with pytest.raises(KeyboardInterrupt):
            copy_log(source, FailingAfter(target, 2), progress, page_size=10)
        copied = copy_log(source, target, progress, page_size=10)
        report = check(source, target)
        assert report.ok, report.mismatches
        present = sum(1 for _ in source.read_log())
        assert copied.read + 20 == present and report.events == present  # two pages before the interruption
        assert target.chain_heads() == source.chain_heads()  # dev's head included, though none of its events is left
        integrity = verify_integrity(target)
        assert integrity.ok, [str(s.broken) for s in integrity.streams if s.broken]
        # The target goes on from the same heads: the same next event gets the same version and link.
        for store in (source, target):
            store.append([message(9 * DAY + 500, "next", "u1", room=DEV, stanza_id="n1")])
        assert target.chain_heads() == source.chain_heads() and verify_integrity(target).ok


def test_a_target_holding_other_events_is_refused_not_interleaved(store_url, tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/source.sqlite") as source, open_event_store(store_url) as target:
        cut_history(source)
        target.append([message(1, "someone else's", "x", room=OPS, stanza_id="elsewhere")])
        with pytest.raises(StoreError, match="holds version 1 already"):
            copy_log(source, target, progress_file(tmp_path, "a", "b"))


def test_a_purged_tail_is_carried_only_when_purge_records_cover_it_up_to_the_head():
    spans = [PurgedSpan(DEV, 1, 5, "aa"), PurgedSpan(DEV, 6, 10, "bb")]
    head = ChainHead(DEV, 10, "bb", 1)
    assert covered(spans, 0, head) and covered(spans, 3, head) and covered(spans[1:], 5, head)
    assert not covered(spans[:1], 0, head)  # versions 6-10 missing with no record of a purge
    assert not covered(spans[1:], 3, head)  # 4-5 likewise
    assert not covered(spans, 0, ChainHead(DEV, 10, "cc", 1))  # the head is not where the purge left it
    assert not covered(spans, 0, ChainHead(DEV, 12, "bb", 1))
    unchained = [PurgedSpan(DEV, 1, 5, "")]  # events archived before the chain began: the purge began it
    assert covered(unchained, 0, ChainHead(DEV, 5, chain.genesis(DEV).hex(), 6))
    assert not covered(unchained, 0, ChainHead(DEV, 5, "aa", 6))
    assert not covered(unchained, 0, ChainHead(DEV, 5, chain.genesis(DEV).hex(), 3))


@pytest.mark.parametrize("source_kind, target_kind", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_an_applied_purge_still_names_its_own_record_in_the_copy(source_kind, target_kind, tmp_path):
    """A ``PurgeApplied`` names its purge by log position: were the copy's positions renumbered (the
    source's gaps closed), the source's number would name a later record in the copy, and a purge made
    there afterwards would look applied before its rebuild (its views kept showing what it deleted)."""
    with ExitStack() as stack:
        source_url, source = stack.enter_context(store_of(source_kind, tmp_path / "source.sqlite"))
        target_url, target = stack.enter_context(store_of(target_kind, tmp_path / "target.sqlite"))
        cut_history(source)
        record_purge_applied(source, pending_purge(source), by="test")
        copy_log(source, target, progress_file(tmp_path, source_url, target_url), page_size=10)
        assert [r.position for r in target.read_log()] == [r.position for r in source.read_log()]
        assert pending_purge(target) is None
        later = purge(target, RetentionSettings(default_days=1, rooms={OPS: 0}), together=message_groups,
                      now=NOW + timedelta(days=9), by="test")
        assert later is not None and pending_purge(target) == target.head()
        # The copy goes on after the source's last position, as the source would.
        assert target.head() > source.head()


def test_a_store_older_than_its_chains_migrates_with_the_same_links(tmp_path):
    """Chains begin in the copy where they began in the source: after a purge whose span crosses a room's
    genesis too (the walk resumes after it), and never, for a room never written since chains began."""
    source_url = f"sqlite:///{tmp_path}/source.sqlite"
    never = "never@conference.localhost"
    with open_event_store(source_url, chained=False) as source:
        source.append([message((9 * DAY if i < 2 else 0) + i, f"p{i}", "u", room=LOBBY, stanza_id=f"p{i}")
                       for i in range(5)])  # fmt: skip
        source.append([message(i, f"old {i}", "u", room=never, stanza_id=f"n{i}") for i in range(3)])
    with open_event_store(source_url) as source, store_of("postgresql", tmp_path) as (target_url, target):
        source.append([message((0 if i < 2 else 9 * DAY) + 10 + i, f"c{i}", "u", room=LOBBY, stanza_id=f"c{i}")
                       for i in range(5)])  # fmt: skip
        record = purge(source, RetentionSettings(default_days=1, rooms={never: 0}), together=message_groups, now=NOW,
                       by="test")
        assert [(s.first, s.last) for s in record.spans] == [(3, 7)]  # across the genesis, version 6
        write_checkpoint(source)
        assert verify_integrity(source).ok
        copy_log(source, target, progress_file(tmp_path, source_url, target_url), page_size=4)
        assert check(source, target).ok and target.chain_heads() == source.chain_heads()
        assert set(target.stream_link_map(never).values()) == {None}
        report = verify_integrity(target)
        assert report.ok and report.checkpoints == 1, [str(s.broken) for s in report.streams if s.broken]


def test_a_stream_purged_before_its_chain_began_migrates_with_the_head_the_purge_gave_it(tmp_path):
    source_url = f"sqlite:///{tmp_path}/source.sqlite"
    with open_event_store(source_url, chained=False) as source:
        source.append([message(i, f"old {i}", "u", room=DEV, stanza_id=f"o{i}") for i in range(3)])
    with open_event_store(source_url) as source, store_of("postgresql", tmp_path) as (target_url, target):
        purge(source, RetentionSettings(default_days=1), together=message_groups, now=NOW, by="test")
        copy_log(source, target, progress_file(tmp_path, source_url, target_url))
        assert check(source, target).ok and target.chain_heads() == source.chain_heads()
        for store in (source, target):  # both go on after the purged versions, from the same link
            store.append([message(9 * DAY, "next", "u", room=DEV, stanza_id="n1")])
        assert [v for v, _ in target.read_room_versions(DEV)] == [4]
        assert target.chain_heads() == source.chain_heads() and verify_integrity(target).ok


def test_a_stream_not_chained_yet_whose_oldest_events_a_purge_deleted_migrates_and_checks(tmp_path):
    """The usual purge: a room's oldest events expire, its recent ones stay. Of a stream not chained yet the
    purge gives it a head at its last (kept) version; the copy must hold that head too (copied events below the
    genesis stay unchained), or the check reports it missing and the copy's next event begins another chain."""
    source_url = f"sqlite:///{tmp_path}/source.sqlite"
    with open_event_store(source_url, chained=False) as source:
        source.append([message((9 * DAY if i >= 3 else 0) + i, f"m{i}", "u", room=DEV, stanza_id=f"o{i}")
                       for i in range(5)])  # fmt: skip
    with open_event_store(source_url) as source, store_of("postgresql", tmp_path) as (target_url, target):
        record = purge(source, RetentionSettings(default_days=1), together=message_groups, now=NOW, by="test")
        assert [(s.first, s.last) for s in record.spans] == [(1, 3)]
        assert verify_integrity(source).ok
        copy_log(source, target, progress_file(tmp_path, source_url, target_url))
        report = check(source, target)
        assert report.ok, report.mismatches
        assert target.chain_heads() == source.chain_heads()
        for store in (source, target):  # both go on after the kept versions, from the same link
            store.append([message(9 * DAY + 50, "next", "u", room=DEV, stanza_id="n1")])
        assert target.chain_heads() == source.chain_heads() and verify_integrity(target).ok
