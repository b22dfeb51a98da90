"""One projection runner per views: a second one (`project`, `project --once`, another `up`) beside a running
one is refused, naming it, and the running one goes on. Both wrote the same lines: whichever committed second
failed on a duplicate line and stopped (a demo's `up` killed by a `project --once`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archive import events as ev
from archive.application import StoreLocation
from tests.cli.test_events_commands import CLI, run_cli
from tests.factories import make, message

ROOM = "lobby@conference.localhost"


@contextmanager
def running_runner(store_url: str, cwd: Path) -> Iterator[subprocess.Popen]:
    """`project --no-search` following the log; stopped (SIGINT) at the end, and it must exit 0."""
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": store_url}
    first = subprocess.Popen([*CLI, "project", "--no-search"], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert any("following the event log" in line for line in iter(first.stderr.readline, ""))
        yield first
        assert first.poll() is None, "the running one goes on"
    finally:
        first.send_signal(signal.SIGINT)
        _, rest = first.communicate(timeout=60)
    assert first.returncode == 0, rest


def refused(result: subprocess.CompletedProcess, first: subprocess.Popen) -> bool:
    # The views by where they are, not by the lease's name (a SQLite file's device and inode: 'views sqlite 65024:2189050').
    return (result.returncode == 1 and "projection runner of the views in " in result.stderr
            and f"pid {first.pid}" in result.stderr and "Traceback" not in result.stderr
            and not re.search(r"sqlite \d+:\d+|postgresql \w+\?schema=", result.stderr))


def test_a_second_runner_on_the_same_views_is_refused_and_the_first_goes_on(event_store, store_url, tmp_path):
    event_store.append([make(ev.OccupantJoined, 0, nick="alice", role="participant")] + [message(1, body="before")])
    with running_runner(store_url, tmp_path) as first:
        event_store.append([message(t, body=f"while running {t}") for t in range(2, 5)])
        second = run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path)
        assert refused(second, first), second.stderr
        # Following, with the search index: refused too, its indexer stopped before it exits.
        following = run_cli("project", store_url=store_url, cwd=tmp_path,
                            env={"CHAT_ARCHIVE_INDEX_PATH": str(tmp_path / "index")})
        assert refused(following, first), following.stderr
    transcript = run_cli("transcript", ROOM, store_url=store_url, cwd=tmp_path)
    assert all(f"while running {t}" in transcript.stdout for t in range(2, 5)), transcript.stdout


def test_the_same_views_named_another_way_are_the_same_views(event_store, store_url, tmp_path):
    """A SQLite views file through a link to its folder; a PostgreSQL database through another host name."""
    event_store.append([message(1, body="hello")])
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        alias = tmp_path / "alias"
        alias.symlink_to(location.path.resolve().parent, target_is_directory=True)
        views = f"sqlite:///{alias / 'views.sqlite'}"
    else:
        views = store_url.replace("@127.0.0.1", "@localhost")
        assert views != store_url
    with running_runner(store_url, tmp_path) as first:
        second = run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path,
                         env={"CHAT_ARCHIVE_PROJECTIONS_URL": views})
        assert refused(second, first), second.stderr
