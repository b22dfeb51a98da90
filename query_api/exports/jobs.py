"""Export jobs: a bundle written in the background to ``[api] export_dir``, its progress on disk.

A job is two files, ``<id>.json`` (state, progress, the request, the manifest's
SHA-256 once done) and ``<id>.zip``; the status file is replaced atomically at every
step, so any server process of the archive can report a job's progress or serve
its download, whichever started it. Downloads are plain files: streamed, and
resumable with HTTP ranges. A job records the host and process writing it, and beats
in its status file every ``HEARTBEAT_EVERY`` seconds while it runs: a "running" job
whose process on this host has ended, or that has not beaten for ``STALE_AFTER``
seconds, reads as failed (``abandoned``), rather than running for ever.

A finished job (done or failed) is kept ``[api] export_keep_days`` after it finished,
then **expires**: its bundle is deleted and its status file becomes a small tombstone
(state "expired", so that its owner is told it expired rather than that it never
existed), itself deleted as long again later. Every serving process sweeps the shared
directory every ``SWEEP_EVERY`` seconds (scheduled by ``chat_archive.bootstrap``), so a
bundle is deleted on time though no one asks for exports again (retention); a job asked
about is judged at that moment. Sweeps of several processes at once are safe: a file
another one deleted first is not an error, a running job is never touched.

At most ``[api] max_running_exports`` jobs run at once, counted from the status files: one count for every
process sharing the directory, whichever started them; a job is started under a lock on the directory
(``flock``: exact between the processes of one host; across hosts as exact as their shared file system's locks).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import msgspec

from archive.errors import ChatArchiveError, NotFoundError
from archive.lease import process_alive
from archive.times import format_time, parse_time, utcnow

from ..errors import ApiError
from .bundle import ExportRequest, write_bundle

log = logging.getLogger(__name__)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
SWEEP_EVERY = 60.0  # seconds between a process's sweeps: how late a bundle may outlive its keep period
HEARTBEAT_EVERY = 5.0  # seconds between a running job's beats in its status file
# Seconds without a beat after which a running job is taken for dead wherever it ran: many beats, so that a slow
# shared file system or the clocks of the hosts sharing export_dir (each beat is its writer's time) do not fail a
# live job.
STALE_AFTER = 60.0


class JobStatus(msgspec.Struct, kw_only=True):
    id: str
    owner: str | None
    state: str  # running | done | failed | expired
    created_at: str
    finished_at: str | None = None  # when it became done or failed: its keep period counts from then
    request: dict
    rooms_done: int = 0
    rooms_total: int = 0
    events: int = 0
    bytes: int | None = None
    manifest_sha256: str | None = None
    error: str | None = None
    host: str = ""  # where the job runs, so a job whose process died is not reported running for ever
    pid: int = 0
    heartbeat_at: str | None = None  # a running job's last beat (None: written before jobs beat; its start counts)


def abandoned(
    status: JobStatus, now: datetime, *, host: str, pid: int, ours: Collection[str],
    alive: Callable[[int], bool] = process_alive,
) -> str | None:
    """Why a job marked running runs no more (None: it runs, or may), as the process ``pid`` on ``host`` running the
    jobs ``ours`` sees it at ``now``. A job of this process runs. One whose process on this host is gone does not.
    Any other runs only while it beats (``STALE_AFTER``): its process cannot be checked from here, or is not
    the one that wrote it (a recreated container's new hostname; its pid 1 reused by the restarted one, this
    process's own pid on the same hostname; another process given a dead one's pid). Without a beat, one status
    file per job whose process died counted for ever, and ``max_running_exports`` of them refused every export."""
    if status.state != "running" or (status.host, status.pid) == (host, pid) and status.id in ours:
        return None
    if status.host == host and status.pid not in (0, pid) and not alive(status.pid):
        return f"the server process writing it (pid {status.pid}) stopped"
    beat = parse_time(status.heartbeat_at or status.created_at)
    if now - beat < timedelta(seconds=STALE_AFTER):
        return None
    return (f"the server process writing it ({status.host or 'unknown host'}, pid {status.pid}) has given no sign of "
            f"life since {format_time(beat)}")


Due = Literal["expire", "forget"]


def expiry(status: JobStatus, now: datetime, keep: timedelta | None) -> Due | None:
    """What is due for a job at ``now``: "expire" (delete its bundle, keep a tombstone), "forget"
    (delete the tombstone too) or nothing; ``keep`` None keeps every job forever."""
    expires = expires_at(status, keep)
    if expires is None:
        return None
    if status.state == "expired":
        return "forget" if now >= expires + keep else None
    return "expire" if now >= expires else None


def expires_at(status: JobStatus, keep: timedelta | None) -> datetime | None:
    """When a finished job's bundle is (or was) deleted; None while it runs or when jobs are kept forever."""
    if keep is None or status.state == "running":
        return None
    # A job written before finished_at was recorded counts from its start (expiring early, never late).
    return parse_time(status.finished_at or status.created_at) + keep


class ExportStopped(ChatArchiveError):
    """The serving process is closing its export jobs: a job still writing ends failed."""


class ExportJobs:
    def __init__(self, directory: str | Path, keep_days: float = 0, max_running: int = 4):
        # Absolute (against the working directory) whoever made the settings: a relative path given to Flask's
        # ``send_file`` is resolved against the app's package directory, where no bundle is.
        self.directory = Path(directory).absolute()
        self.keep = timedelta(days=keep_days) if keep_days else None
        self.max_running = max_running
        self._closing = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._ours: set[str] = set()  # the ids of the jobs this process runs

    def close(self, timeout: float = 30.0) -> None:
        """End the jobs this process runs (each at its next step, failed) and wait for them, before the store and
        views they read are closed: a job thread reading a store closed under it crashed the process (sqlite3)."""
        self._closing.set()
        for thread in list(self._threads):
            thread.join(timeout)

    def start(self, request: ExportRequest, owner: str | None, store, views, search) -> JobStatus:
        self.directory.mkdir(parents=True, exist_ok=True)
        request_fields = {k: (format_time(v) if hasattr(v, "isoformat") else v) for k, v in asdict(request).items()}
        status = JobStatus(id=secrets.token_urlsafe(16), owner=owner, state="running",
                           created_at=format_time(utcnow()), request=request_fields,
                           host=socket.gethostname(), pid=os.getpid())
        if self._closing.is_set():
            raise ExportStopped("the server is stopping: start the export again once it is back")
        with self._starting():
            # Each job holds a thread and reads the whole of its rooms: without a bound, a token could start them
            # until the process (or every process) had no memory or I/O left.
            running = self.running()
            if running >= self.max_running:
                raise ApiError(429, "too_many_exports",
                               f"{running} export jobs are running, at most {self.max_running} at once ([api] "
                               "max_running_exports): start this one once one of them has finished",
                               headers={"Retry-After": "30"})  # fmt: skip
            self._ours.add(status.id)
            self._beat(status)
        thread = threading.Thread(target=self._run, args=(status, request, store, views, search),
                                  name=f"export-{status.id}", daemon=True)
        self._threads.add(thread)
        thread.start()
        return status

    def _run(self, status: JobStatus, request: ExportRequest, store, views, search) -> None:
        partial = self.directory / f"{status.id}.zip.partial"
        saving, finished = threading.Lock(), threading.Event()  # one writer of the status file at a time

        def progress(done: int, total: int, events: int) -> None:
            if self._closing.is_set():
                raise ExportStopped("the server stopped during the export: start it again")
            with saving:
                status.rooms_done, status.rooms_total, status.events = done, total, events
                self._beat(status)

        def beating() -> None:
            # Between progress steps too: one room of a long history may take minutes.
            while not finished.wait(HEARTBEAT_EVERY):
                with saving:
                    if status.state == "running":
                        try:
                            self._beat(status)
                        except OSError as e:  # the next beat tries again; a stale job reads as failed elsewhere
                            log.error("export %s: its heartbeat could not be written: %s", status.id, e)

        heart = threading.Thread(target=beating, name=f"export-{status.id}-heartbeat", daemon=True)
        heart.start()
        try:
            with open(partial, "wb") as out:
                manifest, digest = write_bundle(out, request, store, views, search, progress)
            os.replace(partial, self.bundle_path(status.id))
            size = self.bundle_path(status.id).stat().st_size
            with saving:
                status.state, status.manifest_sha256 = "done", digest
                status.events, status.bytes = manifest.counts["events"], size
        except Exception as e:
            # Whatever it was, the job ends failed (a thread ended by an exception left it "running" for ever);
            # its owner reads why when the archive or the system said it, a bug's text goes to the log only.
            said = isinstance(e, (ChatArchiveError, OSError))
            log.error("export %s failed: %s", status.id, e, exc_info=not said)
            with saving:
                status.state, status.error = "failed", str(e) if said else "internal error (see the server's log)"
            partial.unlink(missing_ok=True)
        with saving:
            status.finished_at = format_time(utcnow())
            self._save(status)
        finished.set()
        heart.join()
        self._ours.discard(status.id)
        self._threads.discard(threading.current_thread())

    def running(self) -> int:
        """The jobs running now, whichever process runs them (one that runs no more, ``abandoned``: not)."""
        statuses = (self._read(path.stem) for path in self.directory.glob("*.json") if _JOB_ID.match(path.stem))
        return sum(1 for status in statuses if status is not None and status.state == "running")

    @contextmanager
    def _starting(self) -> Iterator[None]:
        """A lock on the directory, so that two processes starting a job at once do not both take the last place."""
        with open(self.directory / ".starting.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def status(self, job_id: str) -> JobStatus:
        """The job as it stands now: a job due to expire is expired first (whether or not a sweep came by)."""
        if not _JOB_ID.match(job_id):
            raise NotFoundError(f"no export {job_id!r}")
        status = self._read(job_id)
        if status is None:
            raise NotFoundError(f"no export {job_id!r}")
        due = expiry(status, utcnow(), self.keep)
        if due == "forget":
            self._forget(status)
            raise NotFoundError(f"no export {job_id!r}")
        if due == "expire":
            self._expire(status)
        return status

    def expires_at(self, status: JobStatus) -> datetime | None:
        return expires_at(status, self.keep)

    @property
    def keep_days(self) -> float:
        return self.keep / timedelta(days=1) if self.keep else 0

    def sweep(self, now: datetime | None = None) -> None:
        """Expire and forget every job that is due (``now``: for tests, else the current time)."""
        self.apply(self.plan(now or utcnow()))

    def plan(self, now: datetime) -> list[tuple[JobStatus, Due]]:
        """The jobs due at ``now``, as read from the directory; another process may act on them first."""
        due = []
        if self.keep is None:
            return due
        for path in sorted(self.directory.glob("*.json")):
            status = self._read(path.stem) if _JOB_ID.match(path.stem) else None
            action = expiry(status, now, self.keep) if status is not None else None
            if action is not None:
                due.append((status, action))
        return due

    def apply(self, due: list[tuple[JobStatus, Due]]) -> None:
        for status, action in due:
            try:
                if action == "forget":
                    self._forget(status)
                else:
                    self._expire(status)
            except OSError as e:  # the next sweep tries again; a request that swept is not failed by it
                log.error("export %s could not be %sed: %s", status.id, action, e)

    def scheduled_sweep(self) -> None:
        """``sweep``, as the serving process runs it every ``SWEEP_EVERY`` seconds: a failure (e.g.
        export_dir unreadable) is logged, and the next sweep tries again."""
        try:
            self.sweep()
        except OSError as e:
            log.error("sweeping expired exports in %s: %s", self.directory, e)

    def _read(self, job_id: str) -> JobStatus | None:
        """A job's status (a running one that runs no more, ``abandoned``, marked failed), None if gone."""
        try:
            status = msgspec.json.decode((self.directory / f"{job_id}.json").read_bytes(), type=JobStatus)
        except FileNotFoundError:
            return None
        except msgspec.DecodeError as e:  # not written by us (ours are replaced whole): left for the operator
            log.error("export status %s unreadable: %s", job_id, e)
            return None
        now = utcnow()
        why = abandoned(status, now, host=socket.gethostname(), pid=os.getpid(), ours=self._ours)
        if why is not None:
            status.state, status.finished_at = "failed", format_time(now)
            status.error = f"{why}; start the export again"
            (self.directory / f"{job_id}.zip.partial").unlink(missing_ok=True)
            self._save(status)
        return status

    def _expire(self, status: JobStatus) -> None:
        # The tombstone first: a process reading the job meanwhile sees it expired, not done without a bundle.
        status.state, status.manifest_sha256, status.bytes = "expired", None, None
        self._save(status)
        for suffix in (".zip", ".zip.partial"):
            (self.directory / f"{status.id}{suffix}").unlink(missing_ok=True)

    def _forget(self, status: JobStatus) -> None:
        (self.directory / f"{status.id}.json").unlink(missing_ok=True)

    def bundle_path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.zip"

    def _beat(self, status: JobStatus) -> None:
        """Save a running job's status with a beat: it runs as of now (``abandoned``)."""
        status.heartbeat_at = format_time(utcnow())
        self._save(status)

    def _save(self, status: JobStatus) -> None:
        # A temporary file of this process and thread: two processes expiring one job at once must not
        # write into the same one (the one replaced second would be gone, or half written).
        temporary = self.directory / f"{status.id}.json.{os.getpid()}-{threading.get_ident()}.tmp"
        temporary.write_bytes(msgspec.json.encode(status))
        os.replace(temporary, self.directory / f"{status.id}.json")
