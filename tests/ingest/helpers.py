"""Helpers for the listener's integration tests: a running listener, and events in short form."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager

import pytest

from archive import events as ev
from archive.idempotency import key_digest
from ingest.listener_thread import start_listener
from ingest.status import read_status
from ingest.xmlutil import MAM
from tests.services.prosody import LISTENER, PASSWORD, listener_settings, wait_for


def short(event: ev.Event) -> tuple:
    """An event as a short tuple, for comparing whole sequences in one assert."""
    match event:
        case ev.RoomDiscovered():
            return ("discovered",)
        case ev.OccupantJoined():
            return ("joined", event.nick)
        case ev.OccupantLeft():
            return ("left", event.nick, event.reason.value)
        case ev.PresenceChanged():
            return ("presence", event.nick, event.show, event.status)
        case ev.NickChanged():
            return ("nick", event.old_nick, event.new_nick)
        case ev.RoleChanged():
            return ("role", event.nick, event.role)
        case ev.AffiliationChanged():
            return ("affiliation", event.nick or event.jid, event.affiliation)
        case ev.SubjectChanged():
            return ("subject", event.nick, event.subject)
        case ev.MessagePosted():
            return ("message", event.nick, event.body)
        case ev.MessageCorrected():
            return ("corrected", event.nick, event.body)
        case ev.MessageRetracted():
            return ("retracted", event.target_id, event.moderated)
        case ev.RoomDestroyed():
            return ("destroyed", event.reason)
        case ev.ArchiveGap():
            return ("gap", event.kind.value)
    return (type(event).__name__,)


def room_events(store, room: str) -> list[ev.Event]:
    """What the room said and who was there, without the listener's mark that its first join completed
    (``FirstJoinCompleted``: its tests read it from the store)."""
    return [record.event for record in store.read_room(room) if type(record.event) is not ev.FirstJoinCompleted]


def room_summary(store, room: str) -> list[tuple]:
    return [short(event) for event in room_events(store, room)]


def wait_for_event(store, room: str, *expected: tuple, timeout: float = 10.0) -> list[tuple]:
    """Wait until the room's archive holds every ``expected`` short tuple; return the whole summary."""
    return wait_for(
        lambda: (summary := room_summary(store, room)) and all(e in summary for e in expected) and summary,
        timeout,
        message=f"{expected} in the archive of {room}",
    )


@contextmanager
def running_listener(server, store, status_file=None, **overrides):
    handle = start_listener(listener_settings(server, **overrides), store, status_file=status_file)
    try:
        yield handle
    finally:
        handle.stop()


def wait_joined(handle, room: str, timeout: float = 10.0) -> None:
    wait_for(lambda: room in handle.joined_rooms(), timeout, message=f"the listener to join {room}")


def watch_sent(handle, see) -> list:
    """What ``see`` makes of the XML of each stanza the listener sends from now on (None: left out)."""
    seen: list = []

    def record(stanza):
        value = see(stanza.xml)
        if value is not None:
            seen.append(value)
        return stanza

    client = wait_for(lambda: handle.listener.client, message="the listener's client")
    client.add_filter("out", record)
    return seen


def wait_discovery_polls(handle, polls: int) -> None:
    """Return once the listener has completed ``polls`` more discovery polls, however slow the machine:
    a poll's joins are decided before the next poll asks the service again."""

    def poll_start(xml):  # a poll's first disco#items page; admin commands name a node, later pages an <after>
        query = xml.find("{http://jabber.org/protocol/disco#items}query")
        if query is not None and query.get("node") is None and query.find(".//{http://jabber.org/protocol/rsm}after") is None:
            return True
        return None

    started = watch_sent(handle, poll_start)
    wait_for(lambda: len(started) > polls, timeout=30, message=f"{polls} more discovery polls")


class Traffic:
    """Users talking in several rooms, round-robin, as fast as the server reflects them, in a thread.

    ``sent[room]`` holds the room's stanza-ids of every message the server confirmed.
    ``pause()`` waits until no message is in flight and sending has stopped; ``resume()`` goes on.
    """

    def __init__(self, users, rooms: list[str], prefix: str = "m"):
        self.users, self.rooms, self.prefix = users, rooms, prefix
        self.sent: dict[str, list[str]] = {room: [] for room in rooms}
        self._go, self._stopped, self._idle = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self.count = 0

    def _run(self) -> None:
        while not self._stopped.is_set():
            if not self._go.is_set():
                self._idle.set()
                self._go.wait(0.05)
                continue
            self._idle.clear()
            room = self.rooms[self.count % len(self.rooms)]
            user = self.users[(self.count // len(self.rooms)) % len(self.users)]
            ids = user.say(room, f"{self.prefix}{self.count}")
            self.sent[room].append(ids["stanza_id"])
            self.count += 1

    def start(self) -> "Traffic":
        self._go.set()
        self._thread.start()
        return self

    def pause(self) -> None:
        self._go.clear()
        wait_for(self._idle.is_set, 20, message="traffic to pause")

    def resume(self) -> None:
        self._idle.clear()
        self._go.set()

    def stop(self) -> None:
        self._go.clear()
        self._stopped.set()
        self._thread.join(20)

    def sent_at_least(self, n: int, timeout: float = 20.0) -> None:
        target = self.count + n
        wait_for(lambda: self.count >= target, timeout, message=f"{n} more messages sent")


def archived_stanza_ids(store, room: str) -> list[str]:
    return [e.stanza_id for e in room_events(store, room) if isinstance(e, ev.MessagePosted)]


def write_config(tmp_path, server, room: str, extra: str = "", port: int | None = None, store_url: str | None = None,
                 xmpp: str = "") -> tuple:
    """A config file for `chat-archive listen` archiving the rooms ``room`` (a glob) matches (into a SQLite store
    beside it, unless ``store_url`` names one); ``xmpp``: more lines of its `[xmpp]` section."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    status_file = tmp_path / "status.json"
    store_url = store_url or f"sqlite:///{tmp_path}/events.sqlite"
    config = tmp_path / "chat-archive.toml"
    config.write_text(
        f"""
[xmpp]
jid = "{LISTENER}@{server.domain}"
password = "{PASSWORD}"
host = "127.0.0.1"
port = {port or server.port}
tls = false
muc_services = ["{server.muc_service}"]
include = ["{room}"]
poll_interval = 0.3
status_file = "{status_file}"
{xmpp}

[store]
url = "{store_url}"
{extra}
"""
    )
    return config, status_file, store_url


@pytest.fixture
def start_listen():
    """Starts `chat-archive listen` in a process of its own, returning once it has joined the rooms given.
    The processes still running when the test ends are killed: a failed test (a join that timed out, an
    assertion while traffic flows) would otherwise leave a listener running after the suite."""
    processes: list[subprocess.Popen] = []

    def start(config, status_file, *rooms: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "chat_archive.cli", "--config", str(config), "listen"],
            stdout=subprocess.DEVNULL,
            stderr=open(config.with_suffix(".log"), "ab"),
        )
        processes.append(process)

        def joined():
            if process.poll() is not None:
                pytest.fail(f"chat-archive listen exited with {process.returncode}: {config.with_suffix('.log').read_text()}")
            status = read_status(status_file)
            return status and status.pid == process.pid and set(rooms) <= set(status.rooms_joined)

        wait_for(joined, 20, message=f"chat-archive listen to join {rooms}")
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def delete_behind_its_back(path, room: str, stanza_id: str) -> None:
    """Remove a message from a SQLite store as no archive operation would: a loss to be found."""
    with sqlite3.connect(path) as db:
        digest = key_digest(f"sid:{room}:{stanza_id}")
        (version,) = db.execute(
            "SELECT originator_version FROM archive_event_index WHERE originator_id=? AND digest=?", (room, digest)
        ).fetchone()
        db.execute("DELETE FROM stored_events WHERE originator_id=? AND originator_version=?", (room, version))
        db.execute("DELETE FROM archive_event_index WHERE originator_id=? AND digest=?", (room, digest))


def archive_queries_held_after_the_first(handle, room: str) -> tuple[list, threading.Event]:
    """From the listener's second MAM query of ``room`` on, each query waits on its way out until the event returned
    is cleared, then goes to the server: a catch-up held after its first page, as long as a test needs (slixmpp
    sends the listener's other stanzas meanwhile). Returns the queries seen, and the event."""
    queries, holding = [], threading.Event()
    holding.set()

    async def hold(stanza):
        if stanza.xml.get("to") == room and stanza.xml.find(f"{{{MAM}}}query") is not None:
            queries.append(stanza)
            while len(queries) > 1 and holding.is_set():
                await asyncio.sleep(0.02)
        return stanza

    client = wait_for(lambda: handle.listener.client, message="the listener's client")
    client.add_filter("out", hold)
    return queries, holding


class GatedStore:
    """The test's store, whose appends wait while ``gate`` is closed (a store that cannot keep up)."""

    def __init__(self, store):
        self._store, self._recorder, self.gate = store, store._recorder, threading.Event()
        self.gate.set()

    def append(self, events, **fenced):
        self.gate.wait(30)
        return self._store.append(events, **fenced)

    def __getattr__(self, name):
        return getattr(self._store, name)
