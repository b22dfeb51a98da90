"""What no checkpoint covers yet: `verify --integrity` says it, and a fresh store's first checkpoint comes once it
holds events (checkpoints: ``archive.integrity``; `up` and `listen` write them: ``bootstrap.start_checkpoints``)."""

from __future__ import annotations

import json
import threading

from archive.events import ChainCheckpoint
from archive.integrity import compliance_records, verify_integrity, write_checkpoint
from archive.times import format_time
from chat_archive.bootstrap import start_checkpoints
from chat_archive.cli import main
from chat_archive.config import load_config
from tests.archive.test_integrity import OTHER, ROOM, _wait_for, fill
from tests.factories import message


def test_verify_says_how_much_of_the_log_no_checkpoint_covers_yet(event_store, store_url, tmp_path, capsys):
    """A deletion of a stream's last events is found against a checkpoint only: what came after the last one is
    not covered yet, and a report of "0 checkpoints" did not say that it was the whole archive."""
    fill(event_store)
    report = verify_integrity(event_store)
    assert report.ok and (report.checkpoints, report.not_checkpointed, report.last_checkpoint_at) == (0, 9, None)
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{store_url}"\n')
    assert main(["--config", str(config), "verify", "--integrity"]) == 0
    out = capsys.readouterr().out
    assert "no checkpoint yet: 9 events are not covered" in out, out
    write_checkpoint(event_store)
    event_store.append([message(100, room=ROOM), message(101, room=OTHER)])
    report = verify_integrity(event_store)
    assert (report.checkpoints, report.not_checkpointed) == (1, 2) and report.last_checkpoint_at is not None
    assert main(["--config", str(config), "verify", "--integrity", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["checkpoints"], answer["not_checkpointed"]) == (1, 2), answer
    assert answer["last_checkpoint_at"] == format_time(report.last_checkpoint_at)
    assert verify_integrity(event_store, ROOM).not_checkpointed == 1


def test_a_fresh_store_gets_its_first_checkpoint_once_it_holds_events_not_an_interval_later(event_store, store_url):
    """`up` and `listen` checkpoint at start, every [store] checkpoint_interval (an hour) and on stop: on a fresh
    store the one at start has nothing to cover, and the first events went an hour unchecked."""
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
    assert config.store.checkpoint_interval == 3600
    stop = threading.Event()
    checkpoints = start_checkpoints(config, event_store, stop)
    try:
        fill(event_store)
        _wait_for(lambda: list(compliance_records(event_store, ChainCheckpoint)), timeout=30)
        assert verify_integrity(event_store).not_checkpointed == 0
    finally:
        stop.set()
        checkpoints.join()
