"""A real Prosody (Debian package) on a free loopback port, one per test module, plus real user clients."""

from __future__ import annotations

import time
import uuid

import pytest

from chat_archive.prosody import ProsodyError, ProsodyServer
from chat_archive.xmpp_users import XmppUsers
from ingest.settings import XmppSettings

PASSWORD = "pw"
USERS = ("alice", "bob", "carol", "dave")
LISTENER = "archiver"


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    """A running Prosody; ``archiver@localhost`` is a server admin, USERS are plain accounts."""
    server = start_prosody(tmp_path_factory.mktemp("prosody"))
    yield server
    server.stop()


def start_prosody(directory, **options) -> ProsodyServer:
    """A Prosody in ``directory`` with the accounts above (``options``: more ``ProsodyServer`` fields)."""
    server = ProsodyServer(directory, admins=(f"{LISTENER}@localhost",), **options)
    try:
        for user in (LISTENER, *USERS):
            server.register(user, PASSWORD)
        server.start()
    except ProsodyError as e:
        pytest.fail(f"cannot start Prosody (the README's set-up installs it): {e}")
    return server


@pytest.fixture
def xmpp_users(prosody):
    """Connects real users on demand: ``alice = xmpp_users.connect("alice@localhost", "pw")``."""
    with XmppUsers("127.0.0.1", prosody.port) as pool:
        yield pool


class People:
    """Real users of the module's server, each connected on first use: ``people["alice"]``."""

    def __init__(self, pool: XmppUsers, domain: str):
        self._pool, self._domain, self._users = pool, domain, {}

    def __getitem__(self, name: str):
        if name not in self._users:
            self._users[name] = self._pool.connect(f"{name}@{self._domain}", PASSWORD)
        return self._users[name]


@pytest.fixture(scope="module")
def people(prosody):
    """Module-wide users (connecting costs ~0.3 s each): give each test its own rooms."""
    with XmppUsers("127.0.0.1", prosody.port) as pool:
        yield People(pool, prosody.domain)


def listener_settings(server: ProsodyServer, **overrides) -> XmppSettings:
    fields = {
        "jid": f"{LISTENER}@{server.domain}",
        "password": PASSWORD,
        "host": "127.0.0.1",
        "port": server.port,
        "tls": False,
        "muc_services": (server.muc_service, server.plain_muc_service),
        "poll_interval": 0.3,
        **overrides,
    }
    return XmppSettings(**fields)


def unique_room(server: ProsodyServer, prefix: str = "room", service: str | None = None) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{service or server.muc_service}"


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
