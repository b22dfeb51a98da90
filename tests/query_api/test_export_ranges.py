"""Every export format holds a time range by one rule (``projections.ranges``), on SQLite and PostgreSQL: the
events JSON lines and CSV hold are exactly those the RSMF and EML lines show in the range, nothing later is
shown applied, and changes after the range are listed with their lines.

The reviewer's case (MEDIUM 4): a message posted on day 1 and moderated on day 2. Exported for day 1, RSMF
showed it deleted, dated day 2, where JSON lines held it intact; exported for day 2, JSON lines held the
moderation and RSMF and EML nothing of it: the line formats chose lines by the post's time, the event formats
events by their own."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from archive import events as ev
from archive.times import parse_time
from projections.ranges import in_range
from query_api.exports.bundle import ExportRequest, write_bundle
from query_api.exports.manifest import verify_bundle
from tests.factories import make

from .test_exports import read_rsmf

ROOM = "ranges@conference.localhost"
D1 = datetime(2024, 6, 1, tzinfo=timezone.utc)
D2, D3, D4 = (D1 + timedelta(days=n) for n in (1, 2, 3))


def h(day: datetime, hours: float) -> datetime:
    return day + timedelta(hours=hours)


def _at(moment: datetime, cls, **fields):
    return make(cls, 0, room=ROOM, occurred_at=moment, recorded_at=moment, **fields)


def history() -> list[ev.Event]:
    imported, backfilled = ev.Capture.IMPORT, ev.Capture.BACKFILL
    return [
        _at(h(D1, 9), ev.OccupantJoined, nick="alice", jid="alice@localhost/pc"),
        _at(h(D1, 10), ev.MessagePosted, nick="alice", body="alpha posted day one", stanza_id="a"),
        _at(h(D1, 11), ev.MessagePosted, nick="bob", body="bravo one", stanza_id="b", message_id="b"),
        _at(h(D1, 12), ev.MessageCorrected, nick="bob", replaces_id="b", body="bravo two", stanza_id="b2"),
        _at(h(D1, 13), ev.MessagePosted, nick="alice", body="charlie retracted day three", stanza_id="c"),
        _at(h(D2, 9), ev.MessageRetracted, target_id="a", moderated=True, by_nick="mod", reason="rude",
            stanza_id="ra"),
        _at(h(D2, 10), ev.MessageCorrected, nick="bob", replaces_id="b", body="bravo three", stanza_id="b3"),
        _at(h(D2, 11), ev.MessagePosted, nick="eve", body="echo imported", stanza_id="e", capture=imported),
        _at(h(D2, 11.5), ev.MessageRetracted, target_id="e", moderated=True, by_nick="mod", stanza_id="re",
            capture=imported),
        _at(h(D2, 12), ev.MessagePosted, nick="fay", body="foxtrot one", stanza_id="f", message_id="f",
            capture=backfilled),
        _at(h(D2, 12.5), ev.MessageCorrected, nick="fay", replaces_id="f", body="foxtrot two", stanza_id="f2",
            capture=backfilled),
        make(ev.ArchiveGap, 0, room=ROOM, occurred_at=h(D2, 2), recorded_at=h(D2, 2), gap_start=h(D1, 22),
             gap_end=h(D2, 2), kind=ev.GapKind.MESSAGES, explanation="listener away", recovered=2, verified=False),
        _at(h(D3, 8), ev.MessageRetracted, target_id="c", by_nick="alice", stanza_id="rc"),
        _at(h(D3, 9), ev.MessagePosted, nick="alice", body="golf day three", stanza_id="g"),
    ]  # fmt: skip


RANGES = {
    "day 1": (D1, D2), "day 2": (D2, D3), "day 3": (D3, D4), "across midnight": (h(D1, 10.5), h(D2, 9.5)),
    "all": (None, None), "from day 2": (D2, None), "to day 2": (None, D2),
}  # fmt: skip


@pytest.fixture
def archive(private_seeded):
    private_seeded.store.append(history())
    private_seeded.catch_up()
    return private_seeded


def export(archive, tmp_path, fmt, start, end, query=None) -> dict[str, bytes]:
    path = tmp_path / f"{fmt}-{start}-{end}-{query}.zip".replace(" ", "_").replace(":", "")
    request = ExportRequest(format=fmt, rooms=(ROOM,), start=start, end=end, query=query)
    with open(path, "wb") as out:
        write_bundle(out, request, archive.store, archive.views, archive.search)
    assert verify_bundle(path).ok
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist() if name != "manifest.json"}


def event_positions(archive, tmp_path, fmt, start, end, query=None) -> dict[int, str]:
    """Position -> event type of what a JSON lines or CSV export holds."""
    data = export(archive, tmp_path, fmt, start, end, query)[f"events.{fmt}"].decode()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in data.splitlines()]
        return {row["position"]: row["event"]["type"] for row in rows}
    return {int(row["position"]): row["type"] for row in csv.DictReader(io.StringIO(data))}


def rsmf_events(files: dict[str, bytes]) -> list[dict]:
    return [event for name, data in sorted(files.items()) for event in read_rsmf(data)[1]["events"]]


def shown_positions(events: list[dict], start, end) -> dict[int, str]:
    """Position -> event type of the events an RSMF export shows as occurring in [start, end): each line's own
    event by its time (a gap's record by its end), each edit and the removal by theirs."""
    found = {}
    for event in events:
        custom = {c["name"]: c["value"] for c in event.get("custom", [])}
        if "gap_end" in custom:
            if in_range(parse_time(custom["gap_end"]), start, end):
                found[int(custom["log_position"])] = "archive_gap"
            continue
        if in_range(parse_time(event["timestamp"]), start, end):
            found[int(custom["log_position"])] = "message_posted" if event["type"] == "message" else event["type"]
        for n, edit in enumerate(event.get("edits", []), 1):
            if in_range(parse_time(edit["timestamp"]), start, end):
                found[int(custom[f"edit_{n}_position"])] = "message_corrected"
        if event.get("deleted") and in_range(parse_time(custom["deleted_at"]), start, end):
            found[int(custom["deleted_position"])] = "message_retracted"
    return found


def messages_only(positions: dict[int, str]) -> dict[int, str]:
    return {p: t for p, t in positions.items() if t.startswith("message_") or t == "archive_gap"}


@pytest.mark.parametrize("name", list(RANGES))
def test_every_format_holds_the_same_events_of_a_range(archive, tmp_path, name):
    start, end = RANGES[name]
    jsonl = event_positions(archive, tmp_path, "jsonl", start, end)
    assert event_positions(archive, tmp_path, "csv", start, end) == jsonl
    rsmf_files = export(archive, tmp_path, "rsmf", start, end)
    events = rsmf_events(rsmf_files)
    shown = shown_positions(events, start, end)
    assert shown.keys() == jsonl.keys() and messages_only(shown) == messages_only(jsonl)
    # Nothing at or after the end is shown applied: later changes are listed, each an event after the end.
    for event in events:
        times = [event["timestamp"], *(e["timestamp"] for e in event.get("edits", []))]
        custom = {c["name"]: c["value"] for c in event.get("custom", [])}
        times += [custom["deleted_at"]] if event.get("deleted") else []
        assert end is None or all(parse_time(t) < end for t in times)
        later = [v for k, v in custom.items() if k.startswith("after_range_")]
        assert all(parse_time(v.split(" at ")[1].split(",")[0]) >= end for v in later)
    # EML shows the same lines, the same way: its text is the RSMF files' text.
    eml_files = export(archive, tmp_path, "eml", start, end)
    assert [n.removeprefix("eml/") for n in sorted(eml_files)] == [
        n.removeprefix("rsmf/").replace(".rsmf", ".eml") for n in sorted(rsmf_files)]
    for (_, eml), (_, rsmf) in zip(sorted(eml_files.items()), sorted(rsmf_files.items())):
        assert _text(eml) == _text(rsmf)


def _text(data: bytes) -> str:
    return email.message_from_bytes(data, policy=email.policy.default).get_body(("plain",)).get_content()


def test_a_message_moderated_the_next_day_is_intact_on_its_day_and_removed_on_the_next(archive, tmp_path):
    day_one = {e["body"]: e for e in rsmf_events(export(archive, tmp_path, "rsmf", D1, D2)) if e["type"] == "message"}
    alpha = day_one["alpha posted day one"]
    custom = {c["name"]: c["value"] for c in alpha["custom"]}
    assert "deleted" not in alpha and "deleted_at" not in custom
    assert custom["after_range_1"].startswith("removed later, at 2024-06-02T09:00:00Z")
    bravo = day_one["bravo two"]  # the correction of day 2 listed, not applied
    assert [e["new"] for e in bravo["edits"]] == ["bravo two"]
    assert {c["name"]: c["value"] for c in bravo["custom"]}["after_range_1"].startswith("edited later, at 2024-06-02T10")
    text = _text(export(archive, tmp_path, "eml", D1, D2)[f"eml/{ROOM}/2024-06-01.eml"])
    assert "<alice> alpha posted day one (removed later, at 2024-06-02T09:00:00Z)" in text
    day_two = export(archive, tmp_path, "rsmf", D2, D3)
    # The moderation of day 2 is in day 2's export, with its message (posted on day 1, in day 1's file).
    alpha = next(e for e in read_rsmf(day_two[f"rsmf/{ROOM}/2024-06-01.rsmf"])[1]["events"]
                 if e.get("body") == "alpha posted day one")
    custom = {c["name"]: c["value"] for c in alpha["custom"]}
    assert alpha["deleted"] is True and custom["deleted_at"] == "2024-06-02T09:00:00Z" and custom["deleted_how"] == "moderated"
    text = _text(export(archive, tmp_path, "eml", D2, D3)[f"eml/{ROOM}/2024-06-01.eml"])
    assert "<alice> alpha posted day one (removed)" in text and "<bob> bravo three (edited)" in text


def test_captures_and_gaps_are_evidence_in_rsmf_and_eml(archive, tmp_path):
    """LOW 8: an imported moderation looked like a live one in RSMF, and a gap's reason, recovered count and
    verification were in no line-based format."""
    files = export(archive, tmp_path, "rsmf", D2, D3)
    events = rsmf_events(files)
    echo = next(e for e in events if e.get("body") == "echo imported")
    custom = {c["name"]: c["value"] for c in echo["custom"]}
    assert (custom["capture"], custom["deleted_capture"]) == ("import", "import")
    foxtrot = next(e for e in events if e.get("body") == "foxtrot two")
    custom = {c["name"]: c["value"] for c in foxtrot["custom"]}
    assert (custom["capture"], custom["edit_1_capture"]) == ("backfill", "backfill")
    alpha = next(e for e in events if e.get("body") == "alpha posted day one")
    assert "deleted_capture" not in {c["name"] for c in alpha["custom"]}  # seen live
    gap = next(e for e in events if any(c["name"] == "gap_end" for c in e["custom"]))
    custom = {c["name"]: c["value"] for c in gap["custom"]}
    assert (custom["gap_reason"], custom["gap_recovered"], custom["gap_verified"]) == ("listener away", "2", "false")
    assert "listener away" in gap["body"] and "2 messages recovered" in gap["body"] and "not verified" in gap["body"]
    text = _text(export(archive, tmp_path, "eml", D2, D3)[f"eml/{ROOM}/2024-06-02.eml"])
    assert "echo imported (removed, imported)" in text
    # The gap began on day 1 and reaches into day 2: day 1's export says so too.
    assert "listener away" in _text(export(archive, tmp_path, "eml", D1, D2)[f"eml/{ROOM}/2024-06-01.eml"])


@pytest.mark.parametrize("fmt", ["jsonl", "rsmf"])
def test_a_search_export_holds_its_messages_by_the_same_rule(archive, tmp_path, fmt):
    """A hit posted before the range and corrected in it: the correction (JSON lines), the message as it read at
    the range's end (RSMF), with the gap lines the range holds (a search export dropped them); a hit with nothing
    in the range: nothing."""
    fixed = next(r.position for r in archive.store.read_room(ROOM) if getattr(r.event, "stanza_id", None) == "b3")
    if fmt == "jsonl":
        assert event_positions(archive, tmp_path, fmt, D2, D3, "bravo") == {fixed: "message_corrected"}
        assert event_positions(archive, tmp_path, fmt, D3, D4, "bravo") == {}
        return
    event, gap = sorted(rsmf_events(export(archive, tmp_path, fmt, D2, D3, "bravo")), key=lambda e: "gap_end" in str(e))
    assert event["body"] == "bravo three" and shown_positions([event], D2, D3) == {fixed: "message_corrected"}
    # And the gap reaching into the range: where the archive may be missing what the search would have found.
    assert {c["name"]: c["value"] for c in gap["custom"]}["gap_end"] == "2024-06-02T02:00:00Z"
    assert rsmf_events(export(archive, tmp_path, fmt, D3, D4, "bravo")) == []
