"""A command's output file (`export-log FILE`, `export -o FILE`), written beside its name and renamed over it once
complete: the file named is never truncated or half written, so a backup or export that fails (no archive there, a
store that does not answer, a full disk, Ctrl-C) leaves the previous one as it was."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from archive.errors import ChatArchiveError


@contextlib.contextmanager
def output_file(path: str) -> Iterator[BinaryIO]:
    """``path`` written whole (``replaced_whole``), or standard output for ``-``, whose errors are one line too: a
    full disk it is redirected to, a reader gone (a backup cut short is a failed backup, not `| head`'s quiet end)."""
    if path != "-":
        with replaced_whole(path) as out:
            yield out
        return
    try:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    except OSError as e:
        raise ChatArchiveError(f"cannot write {path}: {e.strerror}") from e


@contextlib.contextmanager
def replaced_whole(path: str | Path) -> Iterator[BinaryIO]:
    """A new file beside ``path`` (same directory: the rename is atomic), renamed to ``path`` when the block ends
    without an error, removed when it raises. An OSError of the file's own (a missing directory, a directory, a full
    disk at the last flush) becomes a ``ChatArchiveError`` naming ``path``."""
    target = Path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as e:
        raise ChatArchiveError(f"cannot write {path}: {e.strerror}") from e
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())  # on disk before it replaces the previous one
        os.chmod(partial, 0o666 & ~_umask())  # mkstemp's file is owner-only; a plain open's is not
        os.replace(partial, target)
    except OSError as e:
        raise ChatArchiveError(f"cannot write {path}: {e.strerror}") from e
    finally:
        partial.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
