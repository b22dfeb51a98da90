"""Export jobs: a bundle written in the background to ``[api] export_dir``, its progress on disk.

A job is two files, ``<id>.json`` (state, progress, the request, the manifest's
SHA-256 once done) and ``<id>.zip``; the status file is replaced atomically at every
step, so any server process of the archive can report a job's progress or serve
its download, whichever started it. Downloads are plain files: streamed, and
resumable with HTTP ranges. A job records the host and process writing it: a
"running" job whose process on this host has ended reads as failed, rather than
running for ever.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import threading
from dataclasses import asdict
from pathlib import Path

import msgspec

from archive.errors import ChatArchiveError, NotFoundError
from archive.lease import process_alive
from archive.times import format_time, utcnow

from .bundle import ExportRequest, write_bundle

log = logging.getLogger(__name__)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


class JobStatus(msgspec.Struct, kw_only=True):
    id: str
    owner: str | None
    state: str  # running | done | failed
    created_at: str
    request: dict
    rooms_done: int = 0
    rooms_total: int = 0
    events: int = 0
    bytes: int | None = None
    manifest_sha256: str | None = None
    error: str | None = None
    host: str = ""  # where the job runs, so a job whose process died is not reported running for ever
    pid: int = 0


def abandoned(status: JobStatus, host: str) -> bool:
    """A running job whose writer, on this host, is gone (a job of another host cannot be checked)."""
    return status.state == "running" and status.host == host and status.pid > 0 and not process_alive(status.pid)


class ExportJobs:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def start(self, request: ExportRequest, owner: str | None, store, views, search) -> JobStatus:
        self.directory.mkdir(parents=True, exist_ok=True)
        request_fields = {k: (format_time(v) if hasattr(v, "isoformat") else v) for k, v in asdict(request).items()}
        status = JobStatus(id=secrets.token_urlsafe(16), owner=owner, state="running",
                           created_at=format_time(utcnow()), request=request_fields,
                           host=socket.gethostname(), pid=os.getpid())
        self._save(status)
        threading.Thread(target=self._run, args=(status, request, store, views, search), name=f"export-{status.id}",
                         daemon=True).start()
        return status

    def _run(self, status: JobStatus, request: ExportRequest, store, views, search) -> None:
        partial = self.directory / f"{status.id}.zip.partial"

        def progress(done: int, total: int, events: int) -> None:
            status.rooms_done, status.rooms_total, status.events = done, total, events
            self._save(status)

        try:
            with open(partial, "wb") as out:
                manifest, digest = write_bundle(out, request, store, views, search, progress)
            os.replace(partial, self.bundle_path(status.id))
            status.state, status.manifest_sha256 = "done", digest
            status.events, status.bytes = manifest.counts["events"], self.bundle_path(status.id).stat().st_size
        except (ChatArchiveError, OSError) as e:
            log.error("export %s failed: %s", status.id, e)
            status.state, status.error = "failed", str(e)
            partial.unlink(missing_ok=True)
        self._save(status)

    def status(self, job_id: str) -> JobStatus:
        if not _JOB_ID.match(job_id):
            raise NotFoundError(f"no export {job_id!r}")
        try:
            status = msgspec.json.decode((self.directory / f"{job_id}.json").read_bytes(), type=JobStatus)
        except FileNotFoundError:
            raise NotFoundError(f"no export {job_id!r}") from None
        if abandoned(status, socket.gethostname()):
            status.state = "failed"
            status.error = f"the server process writing it (pid {status.pid}) stopped; start the export again"
            (self.directory / f"{job_id}.zip.partial").unlink(missing_ok=True)
            self._save(status)
        return status

    def bundle_path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.zip"

    def _save(self, status: JobStatus) -> None:
        temporary = self.directory / f"{status.id}.json.tmp"
        temporary.write_bytes(msgspec.json.encode(status))
        os.replace(temporary, self.directory / f"{status.id}.json")
