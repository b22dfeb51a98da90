"""A rebuild under the purge lease that paused (SIGSTOP) past it while a purge ran on another host: it must not swap
in what it built from events the purge deleted meanwhile. A real `chat-archive rebuild` process on one PostgreSQL
store, the purge on "another host" (an index of its own), as in the many-hosts layout (docs/DEPLOY.md)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import timedelta

import psycopg
import tantivy

from archive.application import StoreLocation, open_event_store
from archive.settings import RetentionSettings, StoreSettings
from archive.times import utcnow
from chat_archive.config import Config
from chat_archive.purges import purge_expired
from projections.rebuild import PAGE_SIZE
from projections.search import IndexLocation
from projections.settings import IndexSettings
from tests.cli.test_events_commands import CLI
from tests.factories import message
from tests.services.postgres import POSTGRES_DSN
from tests.services.prosody import wait_for

EXPIRED, RECENT = 200, 80_000  # the log long enough for the rebuild to be paused part way


def a_log_with_expired_messages_first(store) -> None:
    now = utcnow()
    store.append([message(i, body=f"expired {i}", stanza_id=f"old-{i}", occurred_at=now - timedelta(days=40, seconds=-i))
                  for i in range(EXPIRED)])  # fmt: skip
    for start in range(0, RECENT, 10_000):
        store.append([message(i, body=f"recent {i}", stanza_id=f"new-{i}",
                              occurred_at=now - timedelta(days=1) + timedelta(milliseconds=i))
                      for i in range(start, start + 10_000)])  # fmt: skip


def expire_the_purge_lease(store_url: str) -> None:
    """A minute passes (the purge lease's length) while the rebuild is paused: its lease is expired by hand."""
    schema = StoreLocation.parse(store_url).schema
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        assert conn.execute(f"UPDATE \"{schema}\".archive_leases SET expires = 0 WHERE name = 'purge'").rowcount == 1


def indexed(location: IndexLocation) -> int:
    """Documents in the index's live generation."""
    return tantivy.Index.open(str(location.current())).searcher().num_docs


def test_a_rebuild_paused_past_its_purge_lease_does_not_swap_in_what_a_purge_deleted_meanwhile(postgres_url, tmp_path):
    with open_event_store(postgres_url) as store:
        a_log_with_expired_messages_first(store)
    host_a = IndexLocation(tmp_path / "host-a" / "index")
    env = {**os.environ, "CHAT_ARCHIVE_STORE_URL": postgres_url, "CHAT_ARCHIVE_INDEX_PATH": str(host_a.base)}
    progress = tmp_path / "rebuild.log"
    rebuild = subprocess.Popen([*CLI, "rebuild", "search"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=open(progress, "w"))  # fmt: skip
    try:
        def past_the_expired() -> bool:
            text = progress.read_text()
            assert rebuild.poll() is None and "rebuilt" not in text, f"it ended before it was paused: {text}"
            done = re.findall(r"([\d,]+)/[\d,]+ events", text)
            return bool(done) and int(done[-1].replace(",", "")) >= PAGE_SIZE
        wait_for(past_the_expired, 60, interval=0.01, message="the rebuild to read past the expired messages")
        rebuild.send_signal(signal.SIGSTOP)
        expire_the_purge_lease(postgres_url)
        host_b = Config(store=StoreSettings(url=postgres_url), index=IndexSettings(path=str(tmp_path / "host-b")),
                        retention=RetentionSettings(default_days=30))
        with open_event_store(postgres_url) as store:
            assert purge_expired(host_b, store, by="purge on host b").events == EXPIRED
        rebuild.send_signal(signal.SIGCONT)
        assert rebuild.wait(60) == 1, progress.read_text()
    finally:
        if rebuild.poll() is None:
            rebuild.send_signal(signal.SIGCONT)
            rebuild.kill()
            rebuild.wait(10)
    assert "purge lease was taken over" in progress.read_text()
    assert indexed(host_a) == 0, "the paused rebuild swapped in an index holding what the purge deleted"
