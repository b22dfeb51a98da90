"""Export jobs over the API and the web pages: started, followed, downloaded (and resumed) by their owner only;
a query that cannot run is a 400; a job whose process died or that failed reads as failed; closing the jobs ends
a running one before its store is closed."""

from __future__ import annotations

import pytest

from query_api.context import EXTENSION
from query_api.exports.bundle import ExportRequest
from query_api.exports.manifest import verify_bundle

from .conftest import LOBBY, SECRET


def wait_done(client, url, headers=None):
    import time

    deadline = time.monotonic() + 30
    while True:
        status = client.get(url, headers=headers or {})
        body = status.json if status.is_json else None
        if body is None or body["state"] != "running" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_export_jobs_over_the_api_stream_and_resume_and_belong_to_their_token(private_seeded, tmp_path):
    from query_api import create_app
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    from .conftest import auth, make_config

    tokens = open_token_store(private_seeded.url, cache_seconds=0)
    try:
        mine, other, site = (auth(tokens.create(Role.COMPLIANCE)[0]), auth(tokens.create(Role.COMPLIANCE)[0]),
                             auth(tokens.create(Role.SITE, (LOBBY,))[0], "carol"))
        app = create_app(make_config(private_seeded.url, export_dir=str(tmp_path / "exports")), store=private_seeded.store,
                         views=private_seeded.views, search=private_seeded.search, tokens=tokens)
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

        kinds = [r.event.endpoint.split()[0] for r in read_audit(private_seeded.store)]
        assert kinds.count("export") >= 3  # start, two downloads
    finally:
        tokens.close()


@pytest.fixture
def compliance_api(private_seeded, tmp_path):
    """A test client of the API over ``private_seeded`` (export jobs under tmp_path/exports) and a compliance token's headers."""
    from query_api import create_app
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    from .conftest import auth, make_config

    tokens = open_token_store(private_seeded.url, cache_seconds=0)
    try:
        mine = auth(tokens.create(Role.COMPLIANCE)[0])
        app = create_app(make_config(private_seeded.url, export_dir=str(tmp_path / "exports")), store=private_seeded.store,
                         views=private_seeded.views, search=private_seeded.search, tokens=tokens)
        yield app.test_client(), mine
        app.extensions[EXTENSION].exports.close()  # a job a test started ends before ``private_seeded`` is closed
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


def test_the_export_button_and_progress_page_for_compliance(private_seeded, tmp_path):
    from query_api import create_app
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    from .conftest import make_config
    from .web.test_pages import csrf_of, sign_in

    tokens = open_token_store(private_seeded.url, cache_seconds=0)
    try:
        app = create_app(make_config(private_seeded.url, export_dir=str(tmp_path / "exports")), store=private_seeded.store,
                         views=private_seeded.views, search=private_seeded.search, tokens=tokens)
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

    from archive.times import format_time, utcnow

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    jobs = ExportJobs(tmp_path)
    for job_id, host, pid in (("a" * 22, socket.gethostname(), gone.pid), ("b" * 22, socket.gethostname(), os.getpid()),
                              ("c" * 22, "another-host", gone.pid)):
        (tmp_path / f"{job_id}.json").write_bytes(msgspec.json.encode(JobStatus(
            id=job_id, owner=None, state="running", created_at="2024-05-01T00:00:00Z", request={}, host=host, pid=pid,
            heartbeat_at=format_time(utcnow()))))  # beating (test_jobs_whose_processes_died_elsewhere...: not)
    (tmp_path / f"{'a' * 22}.zip.partial").write_bytes(b"half")
    dead = jobs.status("a" * 22)
    assert dead.state == "failed" and f"pid {gone.pid}" in dead.error
    assert not (tmp_path / f"{'a' * 22}.zip.partial").exists()
    assert jobs.status("a" * 22).state == "failed"  # and so it stays, for every process
    assert jobs.status("b" * 22).state == "running"  # its writer (this process's pid, another container's?) beats
    assert jobs.status("c" * 22).state == "running"  # another host's process cannot be checked from here, and beats


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


def test_export_jobs_past_the_limit_are_a_429_counted_across_processes(archive, views, search_index, token_store,
                                                                       seeded_url, tokens, tmp_path):
    """Every POST started a job (a thread reading whole rooms), with no bound per token or process. The jobs
    running are counted from the shared directory's status files: those of another worker or host count too,
    one whose process on this host died does not."""
    import os
    import socket
    import subprocess
    import sys

    import msgspec

    from query_api import create_app
    from query_api.exports.jobs import JobStatus

    from .conftest import auth, make_config

    from archive.times import format_time, utcnow

    def running(job_id: str, host: str, pid: int) -> None:
        (tmp_path / f"{job_id}.json").write_bytes(msgspec.json.encode(JobStatus(
            id=job_id, owner=None, state="running", created_at="2024-05-01T00:00:00Z", request={}, host=host, pid=pid,
            heartbeat_at=format_time(utcnow()))))

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    running("a" * 22, "another-host", 1)  # another host's: cannot be checked from here, and beats, so it counts
    running("b" * 22, socket.gethostname(), os.getpid())  # another worker's, alive
    running("c" * 22, socket.gethostname(), gone.pid)  # its process died: not running
    config = make_config(seeded_url, export_dir=str(tmp_path), max_running_exports=2)
    app = create_app(config, store=archive, views=views, search=search_index, tokens=token_store)
    client = app.test_client()
    try:
        refused = client.post(f"/api/v1/exports?format=jsonl&room={LOBBY}", headers=auth(tokens["compliance"]))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
        assert refused.json["error"]["code"] == "too_many_exports"
        assert "max_running_exports" in refused.json["error"]["message"]
        assert len(list(tmp_path.glob("*.json"))) == 3  # no job of the refused request
        running("b" * 22, socket.gethostname(), gone.pid)  # the other worker's job ended with its process
        started = client.post(f"/api/v1/exports?format=jsonl&room={LOBBY}", headers=auth(tokens["compliance"]))
        assert started.status_code == 202, started.get_data(as_text=True)
        assert wait_done(client, f"/api/v1/exports/{started.json['id']}", auth(tokens["compliance"])).json["state"] == "done"
    finally:
        app.extensions[EXTENSION].exports.close()


def _status_file(directory, job_id: str, *, host: str, pid: int, heartbeat_at: str | None) -> None:
    """A running job's status file as another process wrote it (raw JSON: as any version of the server reads it)."""
    import json

    status = {"id": job_id, "owner": None, "state": "running", "created_at": "2024-05-01T00:00:00Z", "request": {},
              "host": host, "pid": pid}
    if heartbeat_at is not None:
        status["heartbeat_at"] = heartbeat_at
    (directory / f"{job_id}.json").write_text(json.dumps(status))


def test_jobs_whose_processes_died_elsewhere_do_not_hold_the_limit_for_good(tmp_path, monkeypatch):
    """The cap counted every status file marked running, and a job's process could be checked only on its own
    host: a job whose container was recreated (a new hostname), or whose pid 1 is the restarted container's own
    pid 1 on the same hostname, counted for ever; after ``max_running_exports`` such deaths nobody could export.
    A running job beats in its status file; one whose heartbeat is stale is not running (it reads as failed), and
    one of this host with this process's pid runs only if this process runs it or it beats."""
    import os
    import socket
    import threading
    from datetime import timedelta

    from archive.errors import ChatArchiveError
    from archive.times import format_time, utcnow
    from query_api.exports import jobs
    from tests.services.prosody import wait_for

    stale, fresh = format_time(utcnow() - timedelta(minutes=10)), format_time(utcnow())
    for n in range(3):
        _status_file(tmp_path, f"{n}" * 22, host=f"recreated-container-{n}", pid=1, heartbeat_at=stale)
    _status_file(tmp_path, "3" * 22, host="before-heartbeats", pid=1, heartbeat_at=None)  # since 2024-05-01
    exports = jobs.ExportJobs(tmp_path, max_running=4)
    assert exports.running() == 0
    dead = exports.status("0" * 22)
    assert dead.state == "failed" and dead.finished_at and "recreated-container-0" in dead.error

    # This host, this process's pid, not run by this process: a restarted container's pid 1 before it.
    _status_file(tmp_path, "4" * 22, host=socket.gethostname(), pid=os.getpid(), heartbeat_at=stale)
    _status_file(tmp_path, "5" * 22, host="live-host", pid=1, heartbeat_at=fresh)  # runs elsewhere: counts
    _status_file(tmp_path, "6" * 22, host=socket.gethostname(), pid=os.getpid(), heartbeat_at=fresh)  # beats: counts
    assert exports.running() == 2
    assert exports.status("4" * 22).state == "failed"

    monkeypatch.setattr(jobs, "HEARTBEAT_EVERY", 0.05)
    step, go_on = threading.Event(), threading.Event()

    def slow(out, request, store, views, search, progress):
        progress(0, 1, 0)
        step.set()
        go_on.wait(10)
        raise ChatArchiveError("done waiting")

    job = None
    try:
        monkeypatch.setattr(jobs, "write_bundle", slow)
        monkeypatch.setattr(exports, "max_running", 3)
        job = exports.start(ExportRequest(format="jsonl"), "owner", None, None, None)  # a new export is accepted
        assert step.wait(10)
        first = exports.status(job.id).heartbeat_at
        wait_for(lambda: exports.status(job.id).heartbeat_at != first, 10, message="the job's heartbeat")
        assert exports.running() == 3
        with pytest.raises(Exception, match="max_running_exports"):
            exports.start(ExportRequest(format="jsonl"), "owner", None, None, None)
    finally:
        go_on.set()
        exports.close()


@pytest.mark.parametrize("host, pid, alive, beat_ago, ours, runs", [
    ("here", 7, True, 1000, True, True),  # this process runs it: however long since it beat (it beats)
    ("here", 7, True, 1000, False, False),  # this pid, not run here: a restarted container's pid 1 before it
    ("here", 7, True, 1, False, True),  # this pid, beating: another container of the same hostname
    ("here", 8, False, 1, False, False),  # this host, its process gone: at once
    ("here", 8, True, 1000, False, False),  # its pid alive but silent: given to another process since
    ("here", 8, True, 1, False, True),
    ("there", 1, True, 1, False, True),  # another host's, beating
    ("there", 1, True, 59, False, True),
    ("there", 1, True, 61, False, False),  # silent past STALE_AFTER
])
def test_abandoned_is_decided_by_process_and_heartbeat(host, pid, alive, beat_ago, ours, runs):
    from datetime import datetime, timedelta, timezone

    import msgspec

    from archive.times import format_time
    from query_api.exports.jobs import JobStatus, abandoned

    now = datetime(2026, 12, 5, 18, 0, tzinfo=timezone.utc)
    status = JobStatus(id="j" * 22, owner=None, state="running", created_at="2024-05-01T00:00:00Z", request={},
                       host=host, pid=pid, heartbeat_at=format_time(now - timedelta(seconds=beat_ago)))
    why = abandoned(status, now, host="here", pid=7, ours={"j" * 22} if ours else set(), alive=lambda _: alive)
    assert (why is None) == runs, why
    done = msgspec.structs.replace(status, state="done")
    assert abandoned(done, now, host="here", pid=7, ours=set(), alive=lambda _: False) is None
