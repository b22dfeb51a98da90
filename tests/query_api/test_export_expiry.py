"""Export jobs expire: a finished job's bundle is deleted `[api] export_keep_days` after it finished, by
whichever server process sweeps first; its status answers 410 `expired` for as long again, then nothing."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from archive.times import format_time, utcnow
from query_api.exports.jobs import ExportJobs, JobStatus, expiry

from .conftest import LOBBY, auth, build_seeded, make_config

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
WEEK = timedelta(days=7)


def job(state: str, finished: datetime | None, *, job_id: str = "j" * 22, **fields) -> JobStatus:
    return JobStatus(id=job_id, owner="owner", state=state, created_at="2020-01-01T00:00:00Z", request={},
                     finished_at=format_time(finished) if finished else None, **fields)


@pytest.mark.parametrize("state", ["done", "failed"])
def test_a_finished_job_expires_its_keep_period_after_it_finished(state):
    assert expiry(job(state, NOW - WEEK), NOW, WEEK) == "expire"
    assert expiry(job(state, NOW - WEEK + timedelta(seconds=1)), NOW, WEEK) is None


def test_a_running_job_never_expires_however_old():
    assert expiry(job("running", None), NOW + 1000 * WEEK, WEEK) is None


def test_an_expired_job_is_forgotten_after_as_long_again_and_keep_none_keeps_everything():
    assert expiry(job("expired", NOW - 2 * WEEK + timedelta(seconds=1)), NOW, WEEK) is None
    assert expiry(job("expired", NOW - 2 * WEEK), NOW, WEEK) == "forget"
    assert expiry(job("done", NOW - 1000 * WEEK), NOW, None) is None


def test_a_job_written_before_finished_at_existed_counts_from_its_creation():
    assert expiry(job("done", None), datetime(2020, 1, 8, tzinfo=timezone.utc), WEEK) == "expire"
    assert expiry(job("done", None), datetime(2020, 1, 7, tzinfo=timezone.utc), WEEK) is None


def write_job(directory, job_id: str, state: str, finished: datetime | None, **fields) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    status = job(state, finished, job_id=job_id, host=socket.gethostname(), pid=os.getpid(), **fields)
    (directory / f"{job_id}.json").write_bytes(msgspec.json.encode(status))
    if state == "done":
        (directory / f"{job_id}.zip").write_bytes(b"bundle")
    if state == "running":
        (directory / f"{job_id}.zip.partial").write_bytes(b"half")


def files(directory) -> set[str]:
    return {p.name for p in directory.iterdir()}


def state(directory, job_id: str) -> str:
    """As on disk (``ExportJobs.status`` would judge it at the real time, not the tests' NOW)."""
    return msgspec.json.decode((directory / f"{job_id}.json").read_bytes(), type=JobStatus).state


OLD, FRESH, FAILED, RUNNING, ELSEWHERE = ("o" * 22, "f" * 22, "x" * 22, "r" * 22, "e" * 22)


def seed_jobs(directory) -> None:
    write_job(directory, OLD, "done", NOW - WEEK - timedelta(hours=1))
    write_job(directory, FRESH, "done", NOW - timedelta(days=1))
    write_job(directory, FAILED, "failed", NOW - 2 * WEEK + timedelta(hours=1), error="boom")
    beating = format_time(utcnow())  # (real time: as ``ExportJobs`` judges whether a job runs)
    write_job(directory, RUNNING, "running", None, heartbeat_at=beating)  # this pid, beating: running whatever its age
    write_job(directory, ELSEWHERE, "running", None, heartbeat_at=beating)
    status = msgspec.json.decode((directory / f"{ELSEWHERE}.json").read_bytes(), type=JobStatus)
    status.host = "another-host"  # cannot be checked from here, beating: left alone
    (directory / f"{ELSEWHERE}.json").write_bytes(msgspec.json.encode(status))


def test_a_sweep_deletes_expired_bundles_keeps_fresh_and_running_ones_then_forgets_the_expired(tmp_path):
    seed_jobs(tmp_path)
    jobs = ExportJobs(tmp_path, keep_days=7)
    jobs.sweep(NOW)
    assert files(tmp_path) == {f"{OLD}.json", f"{FRESH}.json", f"{FRESH}.zip", f"{FAILED}.json", f"{RUNNING}.json",
                               f"{RUNNING}.zip.partial", f"{ELSEWHERE}.json", f"{ELSEWHERE}.zip.partial"}
    assert state(tmp_path, OLD) == state(tmp_path, FAILED) == "expired"
    assert state(tmp_path, FRESH) == "done" and state(tmp_path, RUNNING) == state(tmp_path, ELSEWHERE) == "running"
    jobs.sweep(NOW + 2 * WEEK)
    assert files(tmp_path) == {f"{FRESH}.json", f"{RUNNING}.json", f"{RUNNING}.zip.partial", f"{ELSEWHERE}.json",
                               f"{ELSEWHERE}.zip.partial"}


def test_keep_days_zero_keeps_every_export_forever(tmp_path):
    seed_jobs(tmp_path)
    before = files(tmp_path)
    ExportJobs(tmp_path, keep_days=0).sweep(NOW + 1000 * WEEK)
    assert files(tmp_path) == before


def test_two_processes_sweeping_at_once_both_succeed(tmp_path, caplog):
    """One plans from what it read, the other deletes meanwhile: what is already gone is not an error."""
    caplog.set_level(logging.ERROR)
    seed_jobs(tmp_path)
    first, second = ExportJobs(tmp_path, keep_days=7), ExportJobs(tmp_path, keep_days=7)
    stale = first.plan(NOW)
    second.apply(second.plan(NOW))
    first.apply(stale)
    later = first.plan(NOW + 2 * WEEK)
    second.apply(second.plan(NOW + 2 * WEEK))
    first.apply(later)
    assert files(tmp_path) == {f"{FRESH}.json", f"{RUNNING}.json", f"{RUNNING}.zip.partial", f"{ELSEWHERE}.json",
                               f"{ELSEWHERE}.zip.partial"}
    # And really at once, many jobs, several sweepers.
    for n in range(60):
        write_job(tmp_path, f"{n:022d}", "done", NOW - WEEK - timedelta(hours=1))
    sweepers = [ExportJobs(tmp_path, keep_days=7) for _ in range(4)]
    start, failures = threading.Barrier(len(sweepers)), []

    def sweep(jobs: ExportJobs) -> None:
        start.wait()
        try:
            jobs.sweep(NOW)
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            failures.append(e)

    threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and caplog.records == []  # nor logged as a failed sweep
    assert not [name for name in files(tmp_path) if name.endswith((".zip", ".tmp"))]
    assert all(state(tmp_path, f"{n:022d}") == "expired" for n in range(60))


def test_over_the_api_an_expired_export_answers_410_and_its_bundle_is_gone(tmp_path):
    from query_api import create_app
    from query_api.roles import Role
    from query_api.tokens import open_token_store

    from .test_export_jobs import wait_done
    from .web.test_pages import sign_in

    exports = tmp_path / "exports"
    archive = build_seeded(tmp_path)
    tokens = open_token_store(archive.url, cache_seconds=0)
    try:
        secret = tokens.create(Role.COMPLIANCE)[0]
        mine, other = auth(secret), auth(tokens.create(Role.COMPLIANCE)[0])
        app = create_app(make_config(archive.url, export_dir=str(exports), export_keep_days=7), store=archive.store,
                         views=archive.views, search=archive.search, tokens=tokens)
        client = app.test_client()
        jobs = [client.post(f"/api/v1/exports?format=jsonl&room={LOBBY}", headers=mine).json["id"] for _ in range(2)]
        expiring, staying = jobs
        for job_id in jobs:
            assert wait_done(client, f"/api/v1/exports/{job_id}", mine).json["state"] == "done"
        fresh = client.get(f"/api/v1/exports/{staying}", headers=mine).json
        assert fresh["expires_at"] > format_time(utcnow() + WEEK - timedelta(minutes=5))
        # As if it had finished eight days ago.
        status_file = exports / f"{expiring}.json"
        status = msgspec.json.decode(status_file.read_bytes(), type=JobStatus)
        status.finished_at = format_time(utcnow() - timedelta(days=8))
        status_file.write_bytes(msgspec.json.encode(status))

        gone = client.get(f"/api/v1/exports/{expiring}", headers=mine)
        assert gone.status_code == 410 and gone.json["error"]["code"] == "expired"
        assert "expired" in gone.json["error"]["message"] and "7 days" in gone.json["error"]["message"]
        assert not (exports / f"{expiring}.zip").exists()
        download = client.get(f"/api/v1/exports/{expiring}/download", headers=mine)
        assert download.status_code == 410 and download.json["error"]["code"] == "expired"
        assert client.get(f"/api/v1/exports/{expiring}", headers=other).status_code == 404  # not even that it was
        assert client.get(f"/api/v1/exports/{staying}/download", headers=mine).status_code == 200

        web = app.test_client()
        assert sign_in(web, secret).status_code == 303
        page = web.get(f"/exports/{expiring}")
        assert page.status_code == 410 and "expired" in page.text and ">Expired</h1>" in page.text
        assert "kept until" in web.get(f"/exports/{staying}").text
    finally:
        tokens.close()
        archive.close()


def test_a_serving_process_deletes_expired_bundles_on_schedule_though_no_one_asks_for_exports(tmp_path, monkeypatch):
    from chat_archive import api_root

    monkeypatch.setattr(api_root, "SWEEP_EVERY", 0.2)  # a test cannot wait the minute
    exports = tmp_path / "exports"
    write_job(exports, OLD, "done", utcnow() - timedelta(days=1, hours=1))  # left by an earlier process
    write_job(exports, FRESH, "done", utcnow() - timedelta(days=1) + timedelta(seconds=2))  # due while it serves
    archive = build_seeded(tmp_path)
    stop = threading.Event()
    config = make_config(archive.url, export_dir=str(exports), export_keep_days=1)
    server = api_root.start_api(config, archive.store, archive.views, archive.search, stop, host="127.0.0.1", port=0)
    try:
        deadline = utcnow() + timedelta(seconds=30)
        while {f"{OLD}.zip", f"{FRESH}.zip"} & files(exports) and utcnow() < deadline:
            stop.wait(0.1)
        assert files(exports) == {f"{OLD}.json", f"{FRESH}.json"}  # no request made: bundles gone, tombstones kept
        assert state(exports, OLD) == state(exports, FRESH) == "expired"
    finally:
        stop.set()
        server.join(15)
