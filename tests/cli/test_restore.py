"""`export-log` then `import`: a backup restores at its events' positions and versions, so that a purged store's
purge records, checkpoints and chains hold in the restored store; a file that would break it imports nothing."""

from __future__ import annotations

import gzip
import hashlib
import json

from archive import events as ev
from archive.application import open_event_store
from archive.events import PurgedSpan
from archive.integrity import verify_integrity, write_checkpoint
from archive.retention import finish_purges, pending_purge, purge
from archive.settings import RetentionSettings
from projections.message_groups import message_groups
from tests.cli.test_events_commands import run_cli
from tests.cli.test_migrate_purged import DAY, LOBBY, NOW, OPS, cut_history
from tests.factories import make, message


def purged_backup(tmp_path):
    """A purged store, with a purge stopped after its record (before its deletions), and its backup."""
    source_url = f"sqlite:///{tmp_path}/source.sqlite"
    with open_event_store(source_url) as source:
        cut_history(source)
        source.append([make(ev.MessagePosted, 9 * DAY + 200, room=LOBBY, nick="u1", body="unfinished", stanza_id="u")])
        # The full link (events store a prefix of theirs), as a purge recomputes it.
        link = verify_integrity(source, keep={LOBBY: [26]}).streams[0].kept[26].hex()
        source.append([ev.EventsPurged(room=ev.COMPLIANCE_STREAM, occurred_at=NOW, recorded_at=NOW, events=1, by="test",
                                       spans=(PurgedSpan(LOBBY, 26, 26, link),), cutoff_policy="test")])
        state = list(source.read_log_versions()), source.chain_heads(), pending_purge(source)
    backup = tmp_path / "backup.jsonl.gz"
    assert run_cli("export-log", str(backup), store_url=source_url, cwd=tmp_path).returncode == 0
    return backup, *state


def rewritten(path, lines: list[bytes], trailer: dict | None = None):
    """A file of these lines and a trailer that matches them (its other fields from ``trailer``)."""
    body = b"".join(lines)
    fields = {"sha256": hashlib.sha256(body).hexdigest(), "count": len(lines), **(trailer or {})}
    path.write_bytes(gzip.compress(body + json.dumps(fields).encode() + b"\n"))
    return path


def test_a_purged_store_restores_as_it_was_and_its_purges_name_the_same_events(store_url, tmp_path):
    """Renumbered on import, a purge record named the restored store's kept events: finishing it (as the next
    purge or `rebuild all` does) deleted them."""
    backup, log, heads, owed = purged_backup(tmp_path)
    for _ in range(2):  # a repeated restore adds nothing
        restored = run_cli("import", str(backup), store_url=store_url, cwd=tmp_path)
        assert restored.returncode == 0, restored.stderr
    assert f"restored 0 new events from {backup} at their positions and versions ({len(log)} already" in restored.stdout
    with open_event_store(store_url) as target:
        assert list(target.read_log_versions()) == log
        assert target.chain_heads() == [h for h in heads if h.stream != ev.AUDIT_STREAM]
        assert pending_purge(target) == owed
        integrity = verify_integrity(target)
        assert integrity.ok, [str(s.broken) for s in integrity.streams if s.broken]
        finish_purges(target)
        assert [(v, r.event.body) for v, r in target.read_log_versions() if r.event.room == LOBBY and v >= 20] == [
            (v, r.event.body) for v, r in log if r.event.room == LOBBY and v >= 20 and v != 26]
        # The restored store goes on as the source would: a room whose events were all purged at its head.
        target.append([message(9 * DAY + 500, "next", "u1", room="dev@conference.localhost", stanza_id="n1")])
        assert {h.stream: h.version for h in target.chain_heads()}["dev@conference.localhost"] == 15  # after 14


def test_a_restore_stopped_part_way_resumes_from_standard_input_and_refuses_other_events(tmp_path):
    backup, log, heads, _ = purged_backup(tmp_path)
    lines = gzip.decompress(backup.read_bytes()).splitlines(keepends=True)
    url = f"sqlite:///{tmp_path}/target.sqlite"
    # The first pages of a restore stopped part way.
    part = rewritten(tmp_path / "part.jsonl.gz", lines[:10], {"heads": json.loads(lines[-1])["heads"]})
    assert run_cli("import", str(part), store_url=url, cwd=tmp_path).returncode == 0
    resumed = run_cli("import", "-", store_url=url, cwd=tmp_path, input=gzip.decompress(backup.read_bytes()).decode())
    assert resumed.returncode == 0 and f"restored {len(log) - 10} new events" in resumed.stdout, resumed.stderr
    with open_event_store(url) as target:
        assert list(target.read_log_versions()) == log
    for name, events in (("busy", [message(1, "someone else's", "x", room=OPS, stanza_id="elsewhere")]),
                         ("other", [message(1, "other", "x", room="else@conference.localhost", stanza_id="e")])):
        with open_event_store(f"sqlite:///{tmp_path}/{name}.sqlite") as other:
            other.append(events)
        refused = run_cli("import", str(backup), store_url=f"sqlite:///{tmp_path}/{name}.sqlite", cwd=tmp_path)
        assert refused.returncode == 1 and "restore it into an empty store" in refused.stderr, refused.stderr
        with open_event_store(f"sqlite:///{tmp_path}/{name}.sqlite") as other:
            assert other.head() == 1


def test_a_backup_that_would_break_the_store_imports_nothing(tmp_path):
    backup, log, heads, _ = purged_backup(tmp_path)
    lines = gzip.decompress(backup.read_bytes()).splitlines(keepends=True)
    body, trailer = lines[:-1], json.loads(lines[-1])
    swapped = [*body[:5], body[6], body[5], *body[7:]]
    later = json.loads(body[3])
    big = [*body[:3], json.dumps({**later, "position": 2**53}).encode() + b"\n", *body[4:]]
    backwards = [*body[:3], json.dumps({**later, "version": 1}).encode() + b"\n", *body[4:]]
    dev_head = next(h for h in trailer["heads"] if h[0] == "dev@conference.localhost")
    cases = {
        "swapped": (swapped, trailer, "line 7: position 17 after position 20"),
        "too large": (big, trailer, "line 4: not a valid line"),
        "version backwards": (backwards, trailer, "line 4: version 1 of"),
        "no heads": (body, {"heads": []}, "head version none, its lines and purge records 14"),
        "a head short": (body, {"heads": [[*dev_head[:1], 12, *dev_head[2:]]]}, "head version 12"),
    }
    for name, (content, fields, error) in cases.items():
        path = rewritten(tmp_path / f"{name}.jsonl.gz", content, {"heads": fields["heads"]})
        url = f"sqlite:///{tmp_path}/{name}.sqlite"
        refused = run_cli("import", str(path), store_url=url, cwd=tmp_path)
        assert refused.returncode == 1 and error in refused.stderr and "Traceback" not in refused.stderr, (name, refused)
        with open_event_store(url) as target:
            assert target.head() == 0, name
    # A head whose link is not the one its lines chain to is found once they are restored, and reported.
    altered = [[*h[:2], "00" * 32, h[3]] if h[0] == "dev@conference.localhost" else h for h in trailer["heads"]]
    path = rewritten(tmp_path / "altered.jsonl.gz", body, {"heads": altered})
    reported = run_cli("import", str(path), store_url=f"sqlite:///{tmp_path}/altered.sqlite", cwd=tmp_path)
    assert reported.returncode == 1 and "differ from the backup's trailer in dev@" in reported.stderr, reported.stderr


def test_log_lines_without_versions_import_renumbered_unless_they_hold_purge_records(tmp_path):
    """A backup written before versions were (or `log` output): without purges a renumbered log has the same
    versions, so its checkpoints hold; a purge's record would name other events, and the file is refused whole."""
    plain = f"sqlite:///{tmp_path}/plain.sqlite"
    with open_event_store(plain) as store:
        store.append([message(i, f"m{i}", "u", room=(LOBBY, OPS)[i % 2], stanza_id=f"s{i}") for i in range(20)])
        write_checkpoint(store)
    (tmp_path / "plain.jsonl").write_text(run_cli("log", store_url=plain, cwd=tmp_path).stdout)
    url = f"sqlite:///{tmp_path}/t1.sqlite"
    imported = run_cli("import", str(tmp_path / "plain.jsonl"), store_url=url, cwd=tmp_path)
    assert imported.returncode == 0 and "imported 21 new events" in imported.stdout, imported.stderr
    with open_event_store(url) as target:
        report = verify_integrity(target)
        assert report.ok and report.checkpoints == 1
    purged = f"sqlite:///{tmp_path}/purged.sqlite"
    with open_event_store(purged) as source:
        cut_history(source)
    (tmp_path / "log.jsonl").write_text(run_cli("log", store_url=purged, cwd=tmp_path).stdout)
    refused = run_cli("import", str(tmp_path / "log.jsonl"), store_url=f"sqlite:///{tmp_path}/t2.sqlite", cwd=tmp_path)
    assert refused.returncode == 1 and "names events by the positions and versions" in refused.stderr
    with open_event_store(f"sqlite:///{tmp_path}/t2.sqlite") as target:
        assert target.head() == 0


def test_a_store_older_than_its_chains_restores_and_a_purged_tail_written_since_keeps_its_head(tmp_path):
    """A chain begun after a room's first event begins there in the restored store too, so its checkpoints hold;
    `export-log` reads the heads after the lines, so rooms written meanwhile have their heads beyond them: a
    restore takes the lines' heads, and a room whose last events were purged still has its purged tail carried,
    or its next event would take a purged version (and the purge, finished, would delete it)."""
    source_url = f"sqlite:///{tmp_path}/source.sqlite"
    with open_event_store(source_url, chained=False) as source:
        source.append([message(i, f"old {i}", "u", room=OPS, stanza_id=f"o{i}") for i in range(5)])
    with open_event_store(source_url) as source:
        cut_history(source)
    backup = tmp_path / "backup.jsonl.gz"
    assert run_cli("export-log", str(backup), store_url=source_url, cwd=tmp_path).returncode == 0
    lines = gzip.decompress(backup.read_bytes()).splitlines(keepends=True)
    trailer = json.loads(lines[-1])
    assert any(h[0] == OPS and h[3] > 1 for h in trailer["heads"])
    dev = "dev@conference.localhost"
    ahead = [[*h[:1], h[1] + 1, *h[2:]] if h[0] in (dev, LOBBY) else h for h in trailer["heads"]]
    path = rewritten(tmp_path / "live.jsonl.gz", lines[:-1], {"heads": ahead})
    url = f"sqlite:///{tmp_path}/target.sqlite"
    restored = run_cli("import", str(path), store_url=url, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    with open_event_store(url) as target, open_event_store(source_url) as source:
        assert list(target.read_log_versions()) == list(source.read_log_versions())
        assert {h.stream: h.version for h in target.chain_heads()}[dev] == 14
        assert verify_integrity(target).ok


def test_a_backup_cut_short_or_with_bad_purge_records_imports_nothing(tmp_path):
    backup, log, heads, _ = purged_backup(tmp_path)
    lines = gzip.decompress(backup.read_bytes()).splitlines(keepends=True)
    purge_line = next(i for i, line in enumerate(lines) if b"events_purged" in line)
    record = json.loads(lines[purge_line])
    cases = {
        "cut short": (b"".join(lines[:-1]), "ends with its trailer"),
        "a line after its trailer": (b"".join(lines) + json.dumps({**(last := json.loads(lines[-2])), "position": (
            last["position"] + 1), "version": last["version"] + 1}).encode() + b"\n", "ends with its trailer"),
    }
    for name, span in (("a huge span", [LOBBY, 1, 2**63 - 1, "00" * 32]), ("a link not hex", [LOBBY, 1, 2, "zz"])):
        bad = {**record, "event": {**record["event"], "spans": [span]}}
        content = [*lines[:purge_line], json.dumps(bad).encode() + b"\n", *lines[purge_line + 1:-1]]
        path = rewritten(tmp_path / "x.gz", content, {"heads": json.loads(lines[-1])["heads"]})
        cases[name] = (gzip.decompress(path.read_bytes()), f"line {purge_line + 1}")
    for name, (content, error) in cases.items():
        (tmp_path / f"{name}.jsonl").write_bytes(content)
        url = f"sqlite:///{tmp_path}/{name}.sqlite"
        refused = run_cli("import", str(tmp_path / f"{name}.jsonl"), store_url=url, cwd=tmp_path)
        assert refused.returncode == 1 and error in refused.stderr and "Traceback" not in refused.stderr, (name, refused)
        with open_event_store(url) as target:
            assert target.head() == 0, name


def test_a_stream_not_chained_yet_whose_oldest_events_a_purge_deleted_restores(tmp_path):
    """The purge gave the stream a chain head after its last (kept) version; no restored event carries it, and
    the restore refused the backup as altered."""
    source_url, dev = f"sqlite:///{tmp_path}/source.sqlite", "dev@conference.localhost"
    with open_event_store(source_url, chained=False) as source:
        source.append([message((9 * DAY if i >= 3 else 0) + i, f"m{i}", "u", room=dev, stanza_id=f"o{i}")
                       for i in range(5)])  # fmt: skip
    with open_event_store(source_url) as source:
        purge(source, RetentionSettings(default_days=1), together=message_groups, now=NOW, by="test")
        heads = source.chain_heads()
    backup = tmp_path / "backup.jsonl.gz"
    assert run_cli("export-log", str(backup), store_url=source_url, cwd=tmp_path).returncode == 0
    url = f"sqlite:///{tmp_path}/target.sqlite"
    restored = run_cli("import", str(backup), store_url=url, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    with open_event_store(url) as target:
        assert target.chain_heads() == [h for h in heads if h.stream != ev.AUDIT_STREAM]
        assert verify_integrity(target).ok
