"""`up --demo` / `listen --demo`: a local Prosody with simulated users, archived live through bootstrap."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import msgspec
import pytest

from archive import events as ev
from archive.application import open_event_store
from archive.errors import ConfigError
from chat_archive.bootstrap import start_listener
from chat_archive.listener_status import listener_status
from chat_archive.config import Config
from chat_archive.demo import ROOMS, start_demo
from ingest.status import describe, read_status
from tests.services.prosody import wait_for


def test_demo_traffic_is_archived_live_and_the_status_is_readable(tmp_path):
    config = Config()
    config = msgspec.structs.replace(
        config, xmpp=msgspec.structs.replace(config.xmpp, status_file=str(tmp_path / "status.json"), poll_interval=0.3)
    )
    settings, demo = start_demo(config, interval=0.05)
    try:
        assert (settings.status_file, settings.tls) == (config.xmpp.status_file, False)
        with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
            stop = threading.Event()
            listener = start_listener(config, store, stop, xmpp=settings)
            try:
                rooms = {f"{name}@{demo.server.muc_service}" for name in ROOMS}
                wait_for(lambda: set(listener.joined_rooms()) == rooms, 20, message="the demo rooms")

                def talked():
                    posted = [r for r in store.read_log() if isinstance(r.event, ev.MessagePosted)]
                    return len({r.event.room for r in posted}) >= 2 and len(posted) >= 10

                wait_for(talked, 30, message="simulated users talking")
                lines = wait_for(
                    lambda: (text := describe(listener_status(config, store)[0])) and "lobby@" in "\n".join(text) and text,
                    message="the status",
                )
            finally:
                stop.set()
                listener.join(30)
    finally:
        demo.stop()
    assert "connected" in lines[0] and not demo.directory.exists()


def test_the_listener_needs_a_jid_or_the_demo():
    with pytest.raises(ConfigError, match="jid is empty"):
        start_listener(Config(), store=None, stop=threading.Event())


def test_listen_demo_archives_until_sigterm_and_exits_cleanly(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "chat_archive.cli", "listen", "--demo"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        status_file = tmp_path / "data" / "listener-status.json"
        wait_for(lambda: status_file.exists() and len(read_status(status_file).rooms_joined) == 3, 30,
                 message="listen --demo to join the demo rooms")  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, process.stderr.read()
    status = read_status(status_file)
    assert status.stopped and len(status.rooms_joined) == 3
    with open_event_store(f"sqlite:///{tmp_path}/data/events.sqlite") as store:
        assert len(store.rooms()) == 3
