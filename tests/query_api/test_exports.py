"""eDiscovery export bundles on SQLite and PostgreSQL: RSMF 2.0 read back with the stdlib and checked
against a JSON Schema of the manifest, EML per room-day, JSON lines and CSV, manifests and verify-export."""

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
from query_api.context import EXTENSION
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
    assert "ok: 1 files" in capsys.readouterr().out
    with zipfile.ZipFile(out, "a") as zf:
        zf.writestr("extra.txt", "slipped in")
    assert main(["verify-export", str(out)]) == 1
    assert "extra.txt: not listed" in capsys.readouterr().out
    assert main(["--config", str(config), "export", "--room", "nobody@x", "-o", str(tmp_path / "x.zip")]) == 1
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.partial").exists()


def wait_done(client, url, headers=None):
    import time

    deadline = time.monotonic() + 30
    while True:
        status = client.get(url, headers=headers or {})
        body = status.json if status.is_json else None
        if body is None or body["state"] != "running" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_export_jobs_over_the_api_stream_and_resume_and_belong_to_their_token(archive, tmp_path):
    from query_api import create_app
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    from .conftest import auth, make_config

    tokens = open_token_store(archive.url, cache_seconds=0)
    try:
        mine, other, site = (auth(tokens.create(Role.COMPLIANCE)[0]), auth(tokens.create(Role.COMPLIANCE)[0]),
                             auth(tokens.create(Role.SITE, (LOBBY,))[0], "carol"))
        app = create_app(make_config(archive.url, export_dir=str(tmp_path / "exports")), store=archive.store,
                         views=archive.views, search=archive.search, tokens=tokens)
        client = app.test_client()
        started = client.post(f"/api/v1/exports?format=rsmf&room={LOBBY},{SECRET}&from=2024-05-01", headers=mine)
        assert started.status_code == 202, started.get_data(as_text=True)
        job = started.json["id"]
        status = wait_done(client, f"/api/v1/exports/{job}", mine).json
        assert status["state"] == "done" and status["rooms_done"] == status["rooms_total"] == 2
        whole = client.get(f"/api/v1/exports/{job}/download", headers=mine)
        assert whole.status_code == 200 and whole.headers["X-Manifest-SHA256"] == status["manifest_sha256"]
        body = whole.get_data()
        # Resume after the first 100 bytes.
        rest = client.get(f"/api/v1/exports/{job}/download", headers={**mine, "Range": "bytes=100-"})
        assert rest.status_code == 206 and body[:100] + rest.get_data() == body
        (tmp_path / "got.zip").write_bytes(body)
        assert verify_bundle(tmp_path / "got.zip").ok
        assert client.get(f"/api/v1/exports/{job}", headers=other).status_code == 404
        assert client.get(f"/api/v1/exports/{job}/download", headers=site).status_code == 403
        assert client.get("/api/v1/exports/nope", headers=mine).status_code == 404
        assert client.post("/api/v1/exports?format=pdf", headers=mine).status_code == 400
        assert client.post("/api/v1/exports?room=nowhere@x", headers=mine).status_code == 404
        from archive.audit import read_audit

        kinds = [r.event.endpoint.split()[0] for r in read_audit(archive.store)]
        assert kinds.count("export") >= 3  # start, two downloads
    finally:
        tokens.close()


@pytest.fixture
def compliance_api(archive, tmp_path):
    """A test client of the API over ``archive`` (export jobs under tmp_path/exports) and a compliance token's headers."""
    from query_api import create_app
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    from .conftest import auth, make_config

    tokens = open_token_store(archive.url, cache_seconds=0)
    try:
        mine = auth(tokens.create(Role.COMPLIANCE)[0])
        app = create_app(make_config(archive.url, export_dir=str(tmp_path / "exports")), store=archive.store,
                         views=archive.views, search=archive.search, tokens=tokens)
        yield app.test_client(), mine
        app.extensions[EXTENSION].exports.close()  # a job a test started ends before ``archive`` is closed
    finally:
        tokens.close()


def test_an_export_job_of_a_query_that_cannot_run_is_a_400_not_a_job(compliance_api, tmp_path):
    """As the streamed export checks its query before answering: a malformed one failed the job after the 202,
    and a time out of range (an OverflowError in the job's thread) left it "running" for ever."""
    client, mine = compliance_api
    for query in ("deploy AND (", "on:9999-12-31", "after:-99999999999d"):
        started = client.post("/api/v1/exports", query_string={"format": "jsonl", "q": query}, headers=mine)
        assert started.status_code == 400, (query, started.get_data(as_text=True))
    assert not list((tmp_path / "exports").glob("*"))  # no job was started


def test_parameters_sent_as_json_are_refused_not_ignored(compliance_api, tmp_path):
    """The form-taking POSTs read query and form parameters only: a JSON body asking for one room as CSV
    started an RSMF export of every room (202), and a hold's release lost its reason."""
    client, mine = compliance_api
    hold = client.post("/api/v1/holds", data={"case": "c-1", "room": LOBBY}, headers=mine).json["hold_id"]
    for path, body in (("/api/v1/exports", {"room": LOBBY, "format": "csv"}), ("/api/v1/holds", {"case": "c-2"}),
                       (f"/api/v1/holds/{hold}/release", {"reason": "settled"})):
        refused = client.post(path, json=body, headers=mine)
        assert refused.status_code == 415 and refused.json["error"]["code"] == "unsupported_media_type", path
    assert not (tmp_path / "exports").exists()  # no job was started
    assert [h["hold_id"] for h in client.get("/api/v1/holds", headers=mine).json["holds"]] == [hold]
    empty = client.post("/api/v1/exports?format=csv", headers={**mine, "Content-Type": "application/json"})
    assert empty.status_code == 202  # no body: the query string is what was sent


def test_the_export_button_and_progress_page_for_compliance(archive, tmp_path):
    from query_api import create_app
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    from .conftest import make_config
    from .web.test_pages import csrf_of, sign_in

    tokens = open_token_store(archive.url, cache_seconds=0)
    try:
        app = create_app(make_config(archive.url, export_dir=str(tmp_path / "exports")), store=archive.store,
                         views=archive.views, search=archive.search, tokens=tokens)
        client = app.test_client()
        assert sign_in(client, tokens.create(Role.COMPLIANCE)[0]).status_code == 303
        page = client.get(f"/rooms/{LOBBY}?day=2024-05-01")
        assert 'id="export-button"' in page.text
        form = {"csrf_token": csrf_of(page), "room": LOBBY, "from": "2024-05-01", "to": "2024-05-02", "format": "eml"}
        started = client.post("/exports", data=form)
        assert started.status_code == 303
        progress_url = started.headers["Location"]
        import time

        deadline = time.monotonic() + 30
        while 'id="export-download"' not in (shown := client.get(progress_url).text):
            assert '<progress id="export-progress"' in shown and time.monotonic() < deadline
            time.sleep(0.05)
        download = client.get(progress_url + "/download")
        assert download.status_code == 200 and download.mimetype == "application/zip"
        assert "export-button" in client.get("/?q=hello").text
        site = app.test_client()
        assert sign_in(site, tokens.create(Role.SITE, (LOBBY,))[0], "carol").status_code == 303
        assert 'id="export-button"' not in site.get(f"/rooms/{LOBBY}?day=2024-05-01").text
        assert site.get(progress_url).status_code in (403, 404)
    finally:
        tokens.close()


def test_an_export_whose_server_process_died_reads_as_failed_not_running_for_ever(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    import msgspec

    from query_api.exports.jobs import ExportJobs, JobStatus

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    jobs = ExportJobs(tmp_path)
    for job_id, host, pid in (("a" * 22, socket.gethostname(), gone.pid), ("b" * 22, socket.gethostname(), os.getpid()),
                              ("c" * 22, "another-host", gone.pid)):
        (tmp_path / f"{job_id}.json").write_bytes(msgspec.json.encode(JobStatus(
            id=job_id, owner=None, state="running", created_at="2024-05-01T00:00:00Z", request={}, host=host, pid=pid)))
    (tmp_path / f"{'a' * 22}.zip.partial").write_bytes(b"half")
    dead = jobs.status("a" * 22)
    assert dead.state == "failed" and f"pid {gone.pid}" in dead.error
    assert not (tmp_path / f"{'a' * 22}.zip.partial").exists()
    assert jobs.status("a" * 22).state == "failed"  # and so it stays, for every process
    assert jobs.status("b" * 22).state == "running"  # its writer (this process) is alive
    assert jobs.status("c" * 22).state == "running"  # another host's process cannot be checked from here


def test_an_export_job_that_fails_for_any_reason_ends_failed_with_a_reason(tmp_path, monkeypatch):
    """The job's thread caught only the archive's and the system's errors: any other exception (a bug, a
    value out of range) ended the thread and left the job "running" for ever, its partial file behind."""
    import threading

    from query_api.exports import jobs

    def broken(out, *_):
        out.write(b"half")
        raise KeyError("a bug of ours")

    monkeypatch.setattr(jobs, "write_bundle", broken)
    exports = jobs.ExportJobs(tmp_path)
    job = exports.start(ExportRequest(format="jsonl"), "owner", None, None, None)
    for thread in threading.enumerate():
        if thread.name == f"export-{job.id}":
            thread.join(10)
    status = exports.status(job.id)
    assert status.state == "failed" and status.finished_at, status
    assert status.error == "internal error (see the server's log)"  # a bug's text is not its owner's business
    assert not list(tmp_path.glob("*.partial"))


def test_closing_the_export_jobs_ends_a_running_job_before_its_store_is_closed(tmp_path, monkeypatch):
    """A job's thread outlived the app: the store it read was closed under it (a test's teardown, a server
    stopping) and sqlite3 crashed the whole process (a segfault in a fresh clone's suite). Closing the jobs now
    ends a running job at its next step, failed with a reason, and waits for its thread; no new job starts."""
    import threading

    from archive.errors import ChatArchiveError
    from query_api.exports import jobs

    step, go_on = threading.Event(), threading.Event()

    def slow(out, request, store, views, search, progress):
        progress(0, 2, 0)
        step.set()
        go_on.wait(10)
        progress(1, 2, 10)  # the next step, after close
        raise AssertionError("went on after the jobs were closed")

    monkeypatch.setattr(jobs, "write_bundle", slow)
    exports = jobs.ExportJobs(tmp_path)
    job = exports.start(ExportRequest(format="jsonl"), "owner", None, None, None)
    assert step.wait(10)
    closer = threading.Thread(target=exports.close)
    closer.start()
    go_on.set()
    closer.join(10)
    assert not closer.is_alive()
    assert not [t for t in threading.enumerate() if t.name == f"export-{job.id}"]  # joined, not left running
    status = exports.status(job.id)
    assert status.state == "failed" and "stopped" in status.error
    with pytest.raises(ChatArchiveError, match="stopping"):
        exports.start(ExportRequest(format="jsonl"), "owner", None, None, None)
