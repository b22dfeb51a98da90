"""Demo traffic: a local Prosody with a few rooms and simulated users talking.

``up --demo`` (and ``listen --demo``) call ``start_demo(config)``: it starts the
server in a temporary directory, opens three rooms, and keeps users chatting,
changing status and nick, correcting and moderating messages, coming and going,
until the handle is stopped. It
returns the ``[xmpp]`` settings the listener should use to archive it.

The directory records the pid of the process that owns it, so that what a demo
killed outright leaves behind is cleaned up by the next (``demo_leftovers``).
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

import msgspec

from ingest.settings import XmppSettings

from .demo_leftovers import DIRECTORY_PREFIX, OWNER_FILE, SERVER_FILE, remove_left_behind
from .prosody import ProsodyServer
from .xmpp_users import User, XmppUsers

log = logging.getLogger(__name__)

ROOMS = ("lobby", "dev", "random")
PEOPLE = ("alice", "bob", "carol", "dave", "erin")
LISTENER = "archiver"
# The account a newcomer joins the widget with: its password is printed and shown on the
# sign-in page, so it is a fixed, public one (the demo server listens on loopback only).
GUEST, GUEST_PASSWORD = "guest", "guest-demo"
WORDS = (
    "deploy release build test review merge branch coffee lunch meeting bug fix ticket server backup "
    "database index query search archive design docs weekend later today tomorrow yes no maybe thanks "
    "great idea agreed looks good ship it rollback latency cache config log"
).split()
SHOWS = (None, "away", "dnd", "xa", "chat")


class DemoHandle:
    def __init__(self, server: ProsodyServer, directory: Path):
        self.server = server
        self.guest = (f"{GUEST}@{server.domain}", GUEST_PASSWORD)
        self.directory = directory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._talk, name="demo-traffic", daemon=True)
        self.users: XmppUsers | None = None
        self.rooms = [f"{name}@{server.muc_service}" for name in ROOMS]
        self.rooms_open = threading.Event()

    def start(self, password: str, interval: float) -> DemoHandle:
        self._password, self._interval = password, interval
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the simulated users and the server; remove the temporary directory."""
        self._stop.set()
        self._thread.join(20)
        self.server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _talk(self) -> None:
        try:
            with XmppUsers("127.0.0.1", self.server.port) as users:
                self.users = users
                people = {name: users.connect(f"{name}@{self.server.domain}", self._password) for name in PEOPLE}
                self._open_rooms(people)
                self.rooms_open.set()
                rng = random.Random()
                while not self._stop.wait(rng.uniform(0.3, 2.0) * self._interval):
                    try:
                        self._act(rng, people)
                    except Exception as e:  # noqa: BLE001 - a refused action is part of chat life
                        log.debug("demo action failed: %s", e)
        except Exception:  # noqa: BLE001 - the demo must never take the archive down
            log.exception("demo traffic stopped")

    def _open_rooms(self, people: dict[str, User]) -> None:
        owner = people["alice"]
        for room in self.rooms:
            owner.create_room(room, "alice")
            owner.set_subject(room, f"Welcome to {room.partition('@')[0]}")
        for name, user in people.items():
            for room in self.rooms:
                if name != "alice" and random.random() < 0.7:
                    user.join(room, name)

    def _act(self, rng: random.Random, people: dict[str, User]) -> None:
        user = rng.choice(list(people.values()))
        name = user.jid.partition("@")[0]
        joined = list(user.nicks)
        roll = rng.random()
        if not joined or roll < 0.05:
            room = rng.choice(self.rooms)
            if room not in user.nicks:
                user.join(room, name)
            return
        room = rng.choice(joined)
        if roll < 0.75:
            user.say(room, " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))).capitalize())
        elif roll < 0.83:
            user.set_presence(room, rng.choice(SHOWS), rng.choice((None, "busy", "back soon", "on a call")))
        elif roll < 0.88:
            sent = user.say(room, "teh typo")
            user.correct(room, sent["id"], "the typo")
        elif roll < 0.91:
            user.change_nick(room, name if user.nicks[room] != name else f"{name}_")
        elif roll < 0.94 and name != "alice":
            user.leave(room, "bye")
        elif roll < 0.96 and name == "alice":
            user.set_subject(room, f"Today: {rng.choice(WORDS)} and {rng.choice(WORDS)}")
        elif roll < 0.97 and name == "alice":
            spam = rng.choice([u for u in people.values() if u is not user and room in u.nicks] or [user])
            sent = spam.say(room, "BUY CHEAP WATCHES")
            user.moderate(room, sent["stanza_id"], "spam")
        else:
            user.say(room, rng.choice(("brb", "lol", "+1", "see you", "thanks!")))


def start_demo(config, *, interval: float = 1.0) -> tuple[XmppSettings, DemoHandle]:
    """Start a local Prosody with simulated users; return (listener settings, handle with ``.stop()``).

    The settings are ``config.xmpp`` pointed at the demo server (the status file
    and other listener options are kept). ``interval`` scales the pause between
    the users' actions (about one a second by default).
    """
    remove_left_behind(Path(tempfile.gettempdir()))
    directory = Path(tempfile.mkdtemp(prefix=DIRECTORY_PREFIX))
    (directory / OWNER_FILE).write_text(str(os.getpid()), encoding="ascii")
    server = ProsodyServer(directory, admins=(f"{LISTENER}@localhost",))
    password = secrets.token_urlsafe(12)
    for name in (LISTENER, *PEOPLE):
        server.register(name, password)
    server.register(GUEST, GUEST_PASSWORD)
    server.start()
    (directory / SERVER_FILE).write_text(str(server.process.pid), encoding="ascii")
    settings = msgspec.structs.replace(
        config.xmpp,
        jid=f"{LISTENER}@{server.domain}",
        password=password,
        host="127.0.0.1",
        port=server.port,
        tls=False,
        ca_certs="",
        muc_services=(server.muc_service,),
        include=("*",),
        exclude=(),
        rooms=(),
    )
    log.info("demo: Prosody on 127.0.0.1:%d with rooms %s", server.port, ", ".join(ROOMS))
    handle = DemoHandle(server, directory).start(password, interval)
    if not handle.rooms_open.wait(30):
        log.warning("demo: the rooms were not open after 30 s; the listener will find them later")
    return settings, handle
