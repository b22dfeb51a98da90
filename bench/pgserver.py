"""The PostgreSQL server's side of a run: the settings its rates depend on, the same starting state for every
stage, and what the server wrote during a pass (checkpoints, WAL).

A PostgreSQL rate moves with the server's checkpoints: a pass that begins with the previous stage's dirty
buffers and WAL behind it meets its first checkpoint sooner, and one that begins right after large schemas
were dropped has buffers freed for it (two published 10M runs of the same append code ran their last 1M
at 0.88 and 0.75 of their first). A ``CHECKPOINT`` before each stage starts every stage, in every run, from a clean
server, and the notes say how many checkpoints fell inside the pass. The settings are the server's own (this
module reads them, never sets them): a run is comparable with another only where they agree.
"""

from __future__ import annotations

import psycopg

# The one server every PostgreSQL stage and baseline uses.
DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
# What moves the store's rates on one server: checkpoint spacing, the buffer cache, commit durability,
# statistics and vacuum.
SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "synchronous_commit", "full_page_writes",
            "autovacuum")


def settings(dsn: str) -> str:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            found = dict(conn.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                                      (list(SETTINGS),)).fetchall())
    except psycopg.Error as e:
        return f"unreachable ({type(e).__name__})"
    return ", ".join(f"{name} {found.get(name, '?')}" for name in SETTINGS)


def checkpoint(dsn: str) -> str | None:
    """Write the server's dirty buffers and start a new WAL cycle; why not, if it could not."""
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error as e:
        return f"{type(e).__name__}: {e}"
    return None


# PostgreSQL 17 moved the checkpoint counters from pg_stat_bgwriter to pg_stat_checkpointer.
CHECKPOINT_COUNTS = ("SELECT num_timed, num_requested FROM pg_stat_checkpointer",
                     "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter")


def activity(dsn: str) -> tuple[int, int, int] | None:
    """The server's running totals: checkpoints (timed + requested), requested ones, WAL bytes; None if it
    does not say (a note must never stop the run)."""
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            version = conn.info.server_version
            timed, requested = conn.execute(CHECKPOINT_COUNTS[version < 170000]).fetchone()
            wal = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0]
    except psycopg.Error:
        return None
    return int(timed) + int(requested), int(requested), int(wal)


def during(what: str, before: tuple[int, int, int] | None, after: tuple[int, int, int] | None, events: int) -> str:
    """A note: what the server wrote while ``events`` were appended (by every sink of the pass)."""
    if before is None or after is None:
        return f"{what}: the server's checkpoint and WAL counts could not be read"
    checkpoints, requested, wal = (a - b for a, b in zip(after, before))
    return (f"{what}: {checkpoints} checkpoint(s) during the pass ({requested} requested by WAL volume or a command), "
            f"{wal / max(events, 1):,.0f} B of WAL a corpus event (every sink of the pass together)")
