"""Where the index lives: generations of tantivy directories behind one symlink.

``<path>/current`` is a symlink to ``<path>/gen-NNNNNN``. A rebuild writes a new
generation beside the live one and swaps the link with one atomic rename, so a
reader sees either the whole old index or the whole new one. Readers notice the
swap on their next search (they compare the link's target) and reopen; the
generation just replaced is kept until the next swap so that a reader still
holding it keeps working, older ones are deleted.

One rebuild at a time (``claim_rebuild``, a lock file across processes): two at once
would each delete the other's generation at their swaps (`up` rebuilding an index
of an earlier schema while a purge rebuilds it, say).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from archive.errors import StoreError

from ..rebuild import RebuildStopped

_GENERATION = re.compile(r"^gen-(\d{6,})$")
LINK = "current"
REBUILD_LOCK = "rebuild.lock"
GENERATION_ID = "generation-id"
BEGAN_AT = "began-at-head"
log = logging.getLogger(__name__)


class RebuildClaim:
    """This process's rebuild of the index, from its start to its swap or abort; ``release()`` ends it."""

    def __init__(self, fd: int):
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases its lock
            self._fd = None


class IndexLocation:
    def __init__(self, base: str | os.PathLike):
        self.base = Path(base)

    @property
    def link(self) -> Path:
        return self.base / LINK

    def current(self) -> Path | None:
        """The live generation's directory, or None before the first one exists."""
        try:
            return self.base / os.readlink(self.link)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"search index {self.link} is not a generation link: {e}") from e

    def current_or_new(self, init: Callable[[Path], None]) -> Path:
        """The live generation, creating a first one (see ``new_generation``) if there is none (holding the
        rebuild claim: two processes opening a new index at once would each drop the other's at its swap)."""
        current = self.current()
        if current is None:
            claim = self.claim_rebuild()
            try:
                current = self.current()
                if current is None:
                    current = self.new_generation(init)
                    self.swap(current)
            finally:
                claim.release()
        return current

    def new_generation(self, init: Callable[[Path], None] | None = None) -> Path:
        """A fresh generation directory (not live until swapped in), made ready by ``init``
        (an empty index) before anyone else can see it."""
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            numbers = [int(m.group(1)) for m in map(_GENERATION.match, os.listdir(self.base)) if m]
            fresh = self.base / f"gen-{max(numbers, default=0) + 1:06d}"
            fresh.mkdir()
        except OSError as e:
            raise StoreError(f"cannot create a search index generation in {self.base}: {e}") from e
        if init is not None:
            init(fresh)
        return fresh

    def claim_rebuild(self, stop: threading.Event | None = None) -> RebuildClaim:
        """Wait until no other rebuild of this index runs, then hold it off until ``release()``;
        ``RebuildStopped`` if ``stop`` is set while waiting."""
        fd = self._lock_file()
        try:
            if not _try_lock(fd):
                log.warning("search index %s: waiting for another rebuild of it to finish", self.base)
                while not _try_lock(fd):
                    if stop is not None and stop.wait(0.2):
                        raise RebuildStopped("stopped while waiting for another rebuild of the search index")
                    if stop is None:
                        time.sleep(0.2)
        except BaseException:
            os.close(fd)
            raise
        return RebuildClaim(fd)

    def rebuild_running(self) -> bool:
        """Whether a process is rebuilding the index now (holding its claim). Creates nothing (``status`` may run
        as another user than the service)."""
        try:
            fd = os.open(self.base / REBUILD_LOCK, os.O_RDONLY)
        except OSError:
            return False
        try:
            return not _try_lock(fd)
        finally:
            os.close(fd)

    def _lock_file(self) -> int:
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            return os.open(self.base / REBUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot open the search index's rebuild lock in {self.base}: {e}") from e

    def swap(self, fresh: Path, *, keep_replaced: bool = True) -> None:
        """Make ``fresh`` the live generation atomically; drop all but it and the one it replaces (that one
        too unless ``keep_replaced``: after a purge it holds what was purged; a reader that has it open keeps
        its unlinked files until it follows the link). A rebuild's swap holds its claim: no other generation
        is being written."""
        previous = self.current()
        temporary = self.base / f".{LINK}.{os.getpid()}"
        try:
            if temporary.is_symlink():
                temporary.unlink()
            os.symlink(fresh.name, temporary)
            os.replace(temporary, self.link)
        except OSError as e:
            raise StoreError(f"cannot switch the search index to {fresh}: {e}") from e
        self._drop_generations(keep={fresh.name, previous.name if previous and keep_replaced else None})

    def _drop_generations(self, keep: set[str | None]) -> None:
        for entry in os.listdir(self.base):
            if _GENERATION.match(entry) and entry not in keep:
                shutil.rmtree(self.base / entry, ignore_errors=True)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def generation_id(directory: Path) -> str:
    """The generation's id, unique across hosts (made on first asking: generations made before ids were have none)."""
    path = directory / GENERATION_ID
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    written = directory / f".{GENERATION_ID}.{uuid.uuid4().hex}"
    try:
        written.write_text(uuid.uuid4().hex)
        try:
            os.link(written, path)  # the first to ask makes it; the others read that one
        except FileExistsError:
            pass
        finally:
            written.unlink()
        return path.read_text()
    except OSError as e:
        raise StoreError(f"cannot write the id of search index generation {directory}: {e}") from e


def began_at(directory: Path) -> int:
    """The log's head when the generation began to be built from the log's start (0: not known)."""
    try:
        return int((directory / BEGAN_AT).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def note_began_at(directory: Path, head: int) -> None:
    """Remember ``head`` as the generation's ``began_at``, unless it has one."""
    if began_at(directory):
        return
    try:
        (directory / BEGAN_AT).write_text(str(head))
    except OSError as e:
        raise StoreError(f"search index generation {directory}: {e}") from e
