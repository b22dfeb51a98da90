"""One `up` per data directory: a second is refused before it starts anything.

A second `up` beside a running one was refused only by the views' lease, once it had started a demo Prosody;
and on its way out it withdrew the running demo's server file (``demo_guide``), so `verify` beside that demo no
longer found it. The first `up` holds an advisory lock (``flock``) on ``data/up.lock`` for as long as it runs,
and writes its pid and, once it serves, its URL in it, for the refusal to name. The kernel lets go of the lock
when the process ends however it ends (kill -9 too): a lock file left behind holds nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

import msgspec

from archive.errors import ChatArchiveError

from .demo_guide import data_directory

LOCK_FILE = "up.lock"


class _Running(msgspec.Struct):
    pid: int
    url: str | None = None


@contextlib.contextmanager
def only_up_here(config) -> Iterator[Callable[[str], None]]:
    """Hold the data directory's `up` lock, or raise naming the `up` that holds it; yields a function that records
    the URL this `up` serves at."""
    path = data_directory(config) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise ChatArchiveError(f"cannot open {path}: {e.strerror}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ChatArchiveError(f"chat-archive up is already running here ({_holder(fd)}): stop it first "
                                   f"(Ctrl-C where it runs), or run this one elsewhere") from None

        def record(url: str | None) -> None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, msgspec.json.encode(_Running(os.getpid(), url)), 0)

        record(None)
        yield record
    finally:
        os.close(fd)  # lets go of the lock


def _holder(fd: int) -> str:
    """What the holder wrote: "pid N, URL" (a holder still starting has no URL yet)."""
    try:
        running = msgspec.json.decode(os.pread(fd, 4096, 0), type=_Running)
    except (OSError, msgspec.DecodeError):  # written as it is read: at the very start
        return "starting"
    return f"pid {running.pid}, {running.url or 'starting'}"
