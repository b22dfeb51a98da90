"""The PostgreSQL server's side of a bench run: its settings are recorded, every stage starts after a
CHECKPOINT, and the append pass says what the server wrote meanwhile."""

from __future__ import annotations

import re
import time

import psycopg

from bench import pgserver
from bench.__main__ import describe_run

UNREACHABLE = "host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=1"


def test_the_run_records_the_servers_settings_that_move_its_rates():
    recorded = describe_run(["--size", "1m"], "0.5 0.4 0.3", postgres=True)["machine"]["PostgreSQL settings"]
    with psycopg.connect(pgserver.DSN) as conn:
        for name in pgserver.SETTINGS:
            value = conn.execute(f"SHOW {name}").fetchone()[0]
            assert f"{name} {value}" in recorded
    assert "PostgreSQL settings" not in describe_run([], "0.5 0.4 0.3", postgres=False)["machine"]


def test_a_server_out_of_reach_is_said_not_raised():
    assert pgserver.settings(UNREACHABLE).startswith("unreachable (")
    assert pgserver.checkpoint(UNREACHABLE).startswith("OperationalError")
    assert pgserver.activity(UNREACHABLE) is None
    assert pgserver.during("the pass", None, None, 100) == "the pass: the server's checkpoint and WAL counts could not be read"


def test_a_checkpoint_is_counted_and_the_note_says_how_many_fell_inside_the_pass():
    before = pgserver.activity(pgserver.DSN)
    with psycopg.connect(pgserver.DSN, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t AS SELECT g FROM generate_series(1, 10000) AS g")
    assert pgserver.checkpoint(pgserver.DSN) is None
    # The server's statistics may show the checkpoint a moment after the command returns (seen once in a full
    # suite, with other tests' CHECKPOINTs and writes on the same server): read them until they do.
    deadline = time.monotonic() + 10
    while (after := pgserver.activity(pgserver.DSN))[1] == before[1] and time.monotonic() < deadline:
        time.sleep(0.2)
    note = pgserver.during("the pass", before, after, 100)
    checkpoints, requested = map(int, re.search(r"(\d+) checkpoint\(s\) during the pass \((\d+) requested", note).groups())
    assert requested >= 1 and checkpoints >= requested  # other clients of the server may checkpoint too
    assert int(re.search(r"([\d,]+) B of WAL a corpus event", note).group(1).replace(",", "")) > 0
