"""Opening a PostgreSQL store or views whose schema is current takes no table lock.

PostgreSQL locks a table before it looks whether the change is needed: ``ALTER TABLE .. ADD COLUMN IF NOT
EXISTS`` takes ACCESS EXCLUSIVE, ``CREATE INDEX IF NOT EXISTS`` SHARE. Run at every open, they waited behind any
long read of the log (an export, a replay, a rebuild), and their queued request then held up every later reader
and writer of it, the listener's appends included, until the read ended. So each schema's set-up is recorded,
once done, as the digest of its statements in ``archive_schema``; an open that finds its digest there reads one
row and runs nothing. A set-up not recorded (a new store, an older chat-archive's, or a newer statement list)
runs once, under the schema's advisory lock (``recorders.lock_schema_ddl``), each of its table locks waiting at
most ``LOCK_WAIT``: one that would wait longer gives way (the long read and the writers behind it go on) and the
whole set-up is tried again after a pause, until ``GIVE_UP_AFTER``. Processes of two versions record both digests
(neither undoes the other's)."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg.sql import SQL, Composable, Identifier

from .errors import StoreError
from .recorders import lock_schema_ddl

log = logging.getLogger(__name__)

LOCK_WAIT = 2.0  # seconds a migration's statement waits for a table lock before giving way
RETRY_PAUSE = 3.0  # seconds between attempts (a long read may still run)
GIVE_UP_AFTER = 600.0  # seconds of attempts before opening fails, saying why
_TABLE = "archive_schema"
_INDEX = re.compile(r'^CREATE (?:UNIQUE )?INDEX IF NOT EXISTS ("(?:[^"]|"")+"|\w+)', re.IGNORECASE)


def digest(statements: Iterable[str]) -> str:
    """The set-up's identity: its statements' text in order (a changed one is a new set-up)."""
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()


def recorded(curs: Any, schema: str, part: str, mark: str) -> bool:
    """Whether set-up ``mark`` of ``part`` ran on ``schema``: a read of one row (no lock but the marker table's
    ACCESS SHARE, which only its creation conflicts with)."""
    curs.execute("SELECT to_regclass(%s) AS t", (f'"{schema}".{_TABLE}',))
    if curs.fetchone()["t"] is None:
        return False
    curs.execute(SQL("SELECT 1 FROM {} WHERE part=%s AND digest=%s").format(Identifier(schema, _TABLE)), (part, mark))
    return curs.fetchone() is not None


def needed(curs: Any, schema: str, statement: Composable | str) -> bool:
    """False for a ``CREATE INDEX IF NOT EXISTS`` whose index exists: run, it would wait for a SHARE lock of its
    table to do nothing."""
    text = statement if isinstance(statement, str) else statement.as_string()
    match = _INDEX.match(text.strip())
    if not match:
        return True
    name = match.group(1)
    curs.execute("SELECT to_regclass(%s) AS i", (f'"{schema}".{name}',))
    return curs.fetchone()["i"] is None


def missing_columns(curs: Any, schema: str, table: str, columns: Iterable[str]) -> list[str]:
    """The ``columns`` ``table`` lacks (read from the catalog, no lock of the table)."""
    curs.execute("SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name=%s",
                 (schema, table))
    present = {row["column_name"] for row in curs.fetchall()}
    return [column for column in columns if column not in present]


def set_up(datastore: Any, schema: str, part: str, mark: str, run: Callable[[Any], None]) -> None:
    """Run ``run(curs)`` (idempotent DDL) unless set-up ``mark`` of ``part`` is recorded, then record it; in one
    transaction under the schema's advisory lock, table locks waited for at most ``LOCK_WAIT`` each, tried again
    until ``GIVE_UP_AFTER`` (``StoreError`` then)."""
    with datastore.transaction(commit=False) as curs:
        if recorded(curs, schema, part, mark):
            return
    deadline = time.monotonic() + GIVE_UP_AFTER
    while True:
        try:
            with datastore.transaction(commit=True) as curs:
                lock_schema_ddl(curs, schema)  # before the time limit: another process's set-up is bounded too
                if recorded(curs, schema, part, mark):
                    return
                curs.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(LOCK_WAIT * 1000)}ms",))
                run(curs)
                curs.execute(SQL("CREATE TABLE IF NOT EXISTS {} (part text NOT NULL, digest text NOT NULL, "
                                 "at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (part, digest))")
                             .format(Identifier(schema, _TABLE)))
                curs.execute(SQL("INSERT INTO {} (part, digest) VALUES (%s, %s) ON CONFLICT DO NOTHING")
                             .format(Identifier(schema, _TABLE)), (part, mark))
            log.info("set up the %s schema of %r", part, schema)
            return
        except Exception as e:  # the driver's error, or the library's wrapping it
            if not _lock_timeout(e):
                raise
            if time.monotonic() > deadline:
                raise StoreError(f"cannot set up the {part} schema of {schema!r}: its tables stayed in use by "
                                 f"other transactions for {GIVE_UP_AFTER:.0f} s") from e
            log.warning("the %s schema of %r waits for its tables' locks (a long read holds them): "
                        "trying again in %.1f s", part, schema, RETRY_PAUSE)
            time.sleep(RETRY_PAUSE)


def _lock_timeout(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, psycopg.errors.LockNotAvailable):
            return True
        error = error.__cause__
    return False
