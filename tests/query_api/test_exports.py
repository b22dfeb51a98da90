"""eDiscovery export bundles on SQLite and PostgreSQL: RSMF 2.0 read back with the stdlib and checked
against a JSON Schema of the manifest, EML per room-day, JSON lines and CSV, manifests and verify-export (export
jobs over the API: test_export_jobs.py)."""

from __future__ import annotations

import email
import email.policy
import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import jsonschema
import pytest

from archive.application import open_event_store
from query_api.exports.bundle import ExportRequest, write_bundle
from query_api.exports.manifest import MAX_MANIFEST_BYTES, verify_bundle
from archive import events as ev
from tests.factories import at, make, message

from .conftest import LOBBY, PUBLIC, SECRET, seed_events

SCHEMA = json.loads((Path(__file__).parent / "data" / "rsmf_manifest_2.0.schema.json").read_text())


@pytest.fixture
def archive(private_seeded):
    """A fresh seeded archive (on each store)."""
    return private_seeded


def export(archive, tmp_path, **request) -> tuple[Path, dict]:
    path = tmp_path / "export.zip"
    with open(path, "wb") as out:
        manifest, digest = write_bundle(out, ExportRequest(**request), archive.store, archive.views, archive.search)
    return path, {"manifest": manifest, "sha256": digest}


def read_rsmf(data: bytes) -> tuple[email.message.EmailMessage, dict]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    (attachment,) = [part for part in message.iter_attachments() if part.get_filename() == "rsmf.zip"]
    with zipfile.ZipFile(io.BytesIO(attachment.get_content())) as zf:
        return message, json.loads(zf.read("rsmf_manifest.json"))


def test_rsmf_read_back_with_the_standard_library_matches_the_schema_and_keeps_edits_and_removals(archive, tmp_path):
    path, made = export(archive, tmp_path, format="rsmf", rooms=(LOBBY, SECRET))
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".rsmf"))
        assert names == [f"rsmf/{LOBBY}/2024-05-01.rsmf", f"rsmf/{SECRET}/2024-05-01.rsmf"]
        message, manifest = read_rsmf(zf.read(names[0]))
    jsonschema.validate(manifest, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert message["X-RSMF-Version"] == "2.0.0" and message["X-RSMF-EventCount"] == str(len(manifest["events"]))
    assert message["X-RSMF-EventCollectionID"] == LOBBY and message["X-RSMF-BeginDate"].startswith("2024-05-01")
    assert "hello from lobby" in message.get_body(("plain",)).get_content()
    (conversation,) = manifest["conversations"]
    assert conversation["id"] == LOBBY and set(conversation["participants"]) == {p["id"] for p in manifest["participants"]}
    messages = {e["body"]: e for e in manifest["events"] if e["type"] == "message"}
    edited = messages["fixed in lobby"]
    assert [(x["previous"], x["new"]) for x in edited["edits"]] == [("typo in lobby", "fixed in lobby")]
    removed = messages["oops lobby secret"]
    assert removed["deleted"] is True
    assert {c["name"]: c["value"] for c in removed["custom"]}["deleted_how"] == "moderated"
    alice = next(p for p in manifest["participants"] if p["display"] == "alice")
    assert alice["id"] == "alice@localhost" and messages["hello from lobby"]["participant"] == "alice@localhost"
    assert {e["type"] for e in manifest["events"]} >= {"join", "leave", "message", "disclaimer"}
    assert made["manifest"].counts["files"] == 2 and verify_bundle(path).ok


def test_the_schema_rejects_what_rsmf_does_not_allow():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.0.0", "participants": [], "conversations": [],
                             "events": [{"type": "reaction"}]}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "1.0.0", "participants": [], "conversations": [], "events": []}, SCHEMA)


def test_eml_per_room_day_and_a_time_range(archive, tmp_path):
    path, made = export(archive, tmp_path, format="eml", rooms=(PUBLIC,), start=at(0), end=at(25))
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".eml")]
        message = email.message_from_bytes(zf.read(name), policy=email.policy.default)
    assert message["X-Chat-Archive-Room"] == PUBLIC and message["X-Chat-Archive-Day"] == "2024-05-01"
    text = message.get_body(("plain",)).get_content()
    assert "hello from public" in text and "oops public secret" not in text  # at 30 s, out of range
    assert made["manifest"].range_from.startswith("2024-05-01T12:00:00")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_events_as_json_lines_or_csv_with_a_query_carry_the_edits_and_the_removal(archive, tmp_path, fmt):
    path, made = export(archive, tmp_path, format=fmt, query="typo OR oops", rooms=(LOBBY,))
    with zipfile.ZipFile(path) as zf:
        data = zf.read(f"events.{fmt}").decode()
    if fmt == "jsonl":
        types = [json.loads(line)["event"]["type"] for line in data.splitlines() if '"event"' in line]
        assert sorted(types) == ["message_corrected", "message_posted", "message_posted", "message_retracted"]
    else:
        assert "message_corrected" in data and "message_retracted" in data
    assert made["manifest"].counts["events"] == 4 and made["manifest"].query == "typo OR oops"


@pytest.mark.parametrize("fmt", ["rsmf", "jsonl"])
def test_a_room_named_twice_is_exported_once(archive, tmp_path, fmt):
    """room=lobby,lobby (or --room twice) exported every event of the room twice: a JSON line each, or a second
    ZIP member of the same name for each day (RSMF, EML), and the manifest counted the room twice."""
    (tmp_path / "once").mkdir(), (tmp_path / "twice").mkdir()
    once = export(archive, tmp_path / "once", format=fmt, rooms=(LOBBY, PUBLIC))[1]["manifest"]
    path, twice = export(archive, tmp_path / "twice", format=fmt, rooms=(LOBBY, PUBLIC, LOBBY))
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert len(names) == len(set(names))
    assert twice["manifest"].rooms == [LOBBY, PUBLIC]
    assert twice["manifest"].counts == once.counts and twice["manifest"].chain_heads == once.chain_heads
    assert verify_bundle(path).ok


@pytest.mark.parametrize("fmt", ["rsmf", "eml"])
def test_a_room_stored_with_a_line_break_exports_with_its_headers_on_one_line(archive, tmp_path, fmt):
    """A room (or a nick) with a line break in its name, stored by an import before rooms were checked, failed
    the whole export: the mail headers of RSMF and EML refuse line breaks (a traceback in the CLI)."""
    room = "a\r\nX-Injected: 1@conference.localhost"
    archive.store.append([make(ev.OccupantJoined, 0, room=room, nick="eve\nX-Forged: 2"),
                          message(1, "hello", "eve\nX-Forged: 2", room=room)])
    archive.catch_up()
    path, made = export(archive, tmp_path, format=fmt, rooms=(room,))
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(f".{fmt}")]
        message_ = email.message_from_bytes(zf.read(name), policy=email.policy.default)
    assert "X-Injected" not in message_ and "X-Forged" not in message_
    assert message_["Subject"].startswith("a\\x0d\\x0aX-Injected: 1@conference.localhost")
    if fmt == "rsmf":
        _, manifest = read_rsmf(zf_bytes(path, name))
        assert manifest["conversations"][0]["id"] == room  # the manifest inside keeps the name exactly
        assert message_["X-RSMF-Participants"] == "eve\\x0aX-Forged: 2"
    assert made["manifest"].rooms == [room] and verify_bundle(path).ok


def test_rooms_whose_folder_names_would_be_the_same_get_folders_of_their_own(archive, tmp_path):
    """team+1 and team#1 were both written to rsmf/team_1@.../DAY.rsmf: two ZIP members of one name, the first
    unreadable, and verify-export failed the genuine bundle (the name's SHA-256 is the second member's)."""
    rooms = ("team+1@conference.localhost", "team#1@conference.localhost")
    archive.store.append([message(1, f"hello {room}", room=room) for room in rooms])
    archive.catch_up()
    path, made = export(archive, tmp_path, format="rsmf", rooms=rooms)
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".rsmf")]
        conversations = {read_rsmf(zf.read(n))[1]["conversations"][0]["id"] for n in names}
    assert len(names) == len(set(names)) == 2 and conversations == set(rooms)
    assert all(n.startswith("rsmf/team_1@conference.localhost~") for n in names)
    assert verify_bundle(path).ok
    plain = export(archive, tmp_path, format="rsmf", rooms=(LOBBY,))[0]
    assert [n for n in zipfile.ZipFile(plain).namelist() if n.endswith(".rsmf")] == [f"rsmf/{LOBBY}/2024-05-01.rsmf"]


def zf_bytes(path, name) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def test_every_export_has_a_manifest_with_counts_heads_and_hashes_and_tampering_is_found(archive, tmp_path):
    path, made = export(archive, tmp_path, format="jsonl")
    check = verify_bundle(path)
    assert check.ok and check.manifest_sha256 == made["sha256"]
    manifest = check.manifest
    assert manifest.counts["events"] == 33 and manifest.rooms == sorted([LOBBY, SECRET, PUBLIC])
    assert {h.stream for h in manifest.chain_heads} == {LOBBY, SECRET, PUBLIC}
    # Change one byte of the events, keep the manifest: found.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data.replace(b"hello", b"HELLO") if name == "events.jsonl" else data)
    problems = verify_bundle(tampered).problems
    assert len(problems) == 1 and "events.jsonl: SHA-256" in problems[0]
    assert "not a readable ZIP" in verify_bundle(tmp_path / "nothing.zip").problems[0]


def _rezip(path, out, members) -> None:
    """``out``: a ZIP of ``members`` ((name, bytes)), as a bundle altered by someone else would be."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)


def test_verify_export_of_a_damaged_bundle_reports_it_and_prints_what_it_holds_escaped(archive, tmp_path, capsys):
    """A bundle whose member's compressed data was damaged made verify-export end in a traceback (zlib.error is
    no OSError); names and manifest fields from the file went to the terminal as they were."""
    from chat_archive.cli import main

    path, _ = export(archive, tmp_path, format="jsonl")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("events.jsonl")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        members = [(name, zf.read(name)) for name in zf.namelist()]
    data[start + 2 : start + 40] = bytes(b ^ 0xFF for b in data[start + 2 : start + 40])
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(data)
    check = verify_bundle(damaged)
    assert not check.ok and any(p.startswith("events.jsonl: damaged, cannot be read") for p in check.problems)
    manifest = json.loads(dict(members)["manifest.json"])
    manifest["format"] = "jsonl\x1b]0;pwned\x07"
    hostile = tmp_path / "hostile.zip"
    _rezip(path, hostile, [*members[:-1], ("notes\x1b[2J\nPROBLEM none.txt", b"x"),
                           ("manifest.json", json.dumps(manifest).encode())])
    capsys.readouterr()
    assert main(["verify-export", str(damaged)]) == 1 and main(["verify-export", str(hostile)]) == 1
    out = capsys.readouterr().out
    assert "damaged, cannot be read" in out and "\x1b" not in out and "\x07" not in out
    assert "PROBLEM notes\\x1b[2J" in out and "\n    PROBLEM none.txt: not listed" in out


def test_verify_export_finds_a_second_member_of_a_name(archive, tmp_path):
    """A forged copy of a member placed before the genuine one passed verify-export, which reads the last member of
    a name, while a reader that takes the first showed the forgery."""
    path, _ = export(archive, tmp_path, format="jsonl")
    with zipfile.ZipFile(path) as zf:
        members = [(name, zf.read(name)) for name in zf.namelist()]
    doubled = tmp_path / "doubled.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _rezip(path, doubled, [("events.jsonl", b"forged\n"), *members])
    check = verify_bundle(doubled)
    assert not check.ok and check.problems == ["events.jsonl: 2 members of this name in the ZIP file"]


def test_verify_export_reads_a_manifest_only_up_to_its_size_cap(archive, tmp_path):
    """verify-export read the manifest whole, whatever its size: a hostile bundle's manifest (a little deflated
    data for a huge member) could exhaust memory. A manifest past MAX_MANIFEST_BYTES is a problem, not read."""
    path, _ = export(archive, tmp_path, format="jsonl")
    with zipfile.ZipFile(path) as zf:
        members = [(name, zf.read(name)) for name in zf.namelist()]
    padded = dict(members)["manifest.json"] + b" " * MAX_MANIFEST_BYTES  # still a valid manifest
    huge = tmp_path / "huge.zip"
    _rezip(path, huge, [*members[:-1], ("manifest.json", padded)])
    del padded, members
    tracemalloc.start()
    try:
        check = verify_bundle(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not check.ok and check.manifest is None
    assert check.problems == [f"manifest.json: larger than {MAX_MANIFEST_BYTES >> 20} MiB, not read"]
    assert peak < MAX_MANIFEST_BYTES // 4


def test_export_and_verify_export_from_the_command_line(tmp_path, capsys):
    from chat_archive.cli import main

    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        store.append(seed_events())
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{url}"\n[index]\npath = "{tmp_path}/index"\n')
    from chat_archive.cli import main as cli

    assert cli(["--config", str(config), "rebuild", "all"]) == 0
    out = tmp_path / "case.zip"
    assert main(["--config", str(config), "export", "--format", "rsmf", "--room", LOBBY, "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "manifest SHA-256" in said and out.exists()
    assert main(["verify-export", str(out)]) == 0
    assert "ok: 1 file," in capsys.readouterr().out
    with zipfile.ZipFile(out, "a") as zf:
        zf.writestr("extra.txt", "slipped in")
    assert main(["verify-export", str(out)]) == 1
    assert "extra.txt: not listed" in capsys.readouterr().out
    assert main(["--config", str(config), "export", "--room", "nobody@x", "-o", str(tmp_path / "x.zip")]) == 1
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.partial").exists()


@pytest.mark.parametrize("fmt, subject", [("eml", "solo@conference.localhost on 2024-05-01 (1 event)"),
                                          ("rsmf", "solo@conference.localhost: 1 event")])
def test_a_room_day_of_one_event_is_not_called_1_events(archive, tmp_path, fmt, subject):
    archive.store.append([message(1, "alone", "eve", room="solo@conference.localhost")])
    archive.catch_up()
    path, _ = export(archive, tmp_path, format=fmt, rooms=("solo@conference.localhost",))
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(f".{fmt}")]
        assert email.message_from_bytes(zf.read(name), policy=email.policy.default)["Subject"] == subject
