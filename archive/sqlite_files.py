"""How the archive's SQLite files are made and kept: their page size, their write-ahead log's checkpoints, and
emptying the log after a purge. The store (``archive.sqlite_recorder``) and the views (``projections``) share them."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError

# Bytes per page of a new store (SQLite's default is 4096): a commit writes a quarter as many WAL
# frames, and a batch's rows fill fewer pages: less CPU per appended event.
PAGE_SIZE = 16384
# A checkpoint every ~256 MB of WAL (default 1000 pages: 16 MB at 16 KiB) instead of after nearly every
# batch: a page rewritten by many commits is copied into the database once, and the writer waits for the
# checkpoint's fsyncs less often (40 MB appended ~5% slower, wall clock). SQLite reuses the WAL file from
# its start after a checkpoint, never shrinks it: it keeps its largest size (this plus a batch, more if a
# long read held off a checkpoint) while the store is open. Counted in pages, so in bytes whatever the
# store's page size.
WAL_CHECKPOINT_BYTES = 256 * 2**20


def new_database_pages(path: str, lock_timeout: float) -> None:
    """Create an empty store (or views) file with ``PAGE_SIZE`` pages. The size is fixed once the file is in WAL
    mode, which the library's first connection sets: an existing file keeps the page size it has.
    Errors are the library's (``InterfaceError``), which the store translates like its own."""
    if os.path.exists(path) and os.path.getsize(path):
        return
    try:
        raw = sqlite3.connect(path, uri=True, isolation_level=None, timeout=lock_timeout)
        try:
            raw.execute(f"PRAGMA page_size={PAGE_SIZE}")
            raw.execute("PRAGMA journal_mode=WAL")
        finally:
            raw.close()
    except sqlite3.Error as e:
        raise InterfaceError(e) from e


# How long erasing waits for readers to leave the write-ahead log. Short: the checkpoint holds the file's
# write lock meanwhile, and the listener's appends wait behind it; the next purge tries again.
ERASE_WAIT_SECONDS = 2.0


def erase_wal_copies(datastore: Any) -> None:
    """Copy a SQLite database's write-ahead log into it and empty the log, so that rows just deleted (and
    overwritten: ``secure_delete``) leave no older copy in either file: the log is reused, never shrunk,
    by the automatic checkpoints. eventsourcing's ``OperationalError`` if a reader held the log throughout."""
    with datastore.get_connection(commit=True) as conn:  # this process's writers wait for it
        raw: sqlite3.Connection = conn._sqlite_conn
        try:
            timeout = raw.execute("PRAGMA busy_timeout").fetchone()[0]
            raw.execute(f"PRAGMA busy_timeout={int(ERASE_WAIT_SECONDS * 1000)}")
            try:
                busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                raw.execute(f"PRAGMA busy_timeout={timeout}")
        except sqlite3.Error as e:
            raise OperationalError(str(e)) from e
    if busy:
        raise OperationalError(f"{datastore.pool.db_name}: a reader held the write-ahead log for "
                               f"{ERASE_WAIT_SECONDS:g} s; its copies of deleted rows stay until a later "
                               "purge empties it")
