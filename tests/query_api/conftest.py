"""Fixtures of the query API tests: a seeded archive, tokens of every role, the app, a permission site."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from archive import events as ev
from archive.application import open_event_store
from archive.settings import StoreSettings
from archive.store import EventStore
from chat_archive.config import Config
from projections.follower import LogFollower
from projections.search import IndexLocation, SearchIndex, SearchIndexer, SearchIndexProjection
from projections.views import Views
from query_api import create_app
from query_api.context import EXTENSION
from query_api.roles import Role
from query_api.settings import ApiSettings
from query_api.keys import KeyRing, KeyStore
from query_api.signing import Signer
from query_api.tokens import open_database, open_token_store
from tests.factories import make, message
from tests.services.http_site import HttpSite
from tests.services.postgres import fresh_schema_url

LOBBY = "lobby@conference.localhost"  # granted to the analyst and the site's user
SECRET = "secret@conference.localhost"  # granted to nobody but compliance
PUBLIC = "public@conference.localhost"  # flagged public for anonymous read
MISSING = "nowhere@conference.localhost"  # no such room


def seed_events() -> list[ev.Event]:
    """A little history in each room, with real JIDs, an edit and a retraction."""
    events = []
    for room in (LOBBY, SECRET, PUBLIC):
        tag = room.split("@")[0]
        events += [
            make(ev.OccupantJoined, 0, room=room, nick="alice", jid="alice@localhost/pc", role="participant"),
            make(ev.OccupantJoined, 1, room=room, nick="bob", jid="bob@localhost/phone"),
            make(ev.SubjectChanged, 2, room=room, subject=f"{tag} subject", nick="alice"),
            message(10, f"hello from {tag}", "alice", room=room, message_id=f"m1-{tag}", jid="alice@localhost/pc"),
            message(20, f"typo in {tag}", "bob", room=room, message_id=f"m2-{tag}"),
            make(ev.MessageCorrected, 21, room=room, nick="bob", replaces_id=f"m2-{tag}", body=f"fixed in {tag}",
                 stanza_id=f"c-{tag}"),
            message(30, f"oops {tag} secret", "alice", room=room, stanza_id=f"r-{tag}"),
            make(ev.MessageRetracted, 31, room=room, target_id=f"r-{tag}", moderated=True, by_nick="bob",
                 by_jid="bob@localhost/phone", stanza_id=f"rr-{tag}"),
            make(ev.OccupantLeft, 40, room=room, nick="bob", jid="bob@localhost/phone"),
            make(ev.OccupantJoined, 50, room=room, nick="eve", jid="eve@localhost/x"),
            make(ev.OccupantLeft, 51, room=room, nick="eve", reason=ev.LeaveReason.KICKED, actor="owner@localhost/desk",
                 reason_text="spam"),
        ]  # fmt: skip
    return events


def make_config(store_url: str, **api) -> Config:
    return Config(store=StoreSettings(url=store_url), api=ApiSettings(**api))


class Seeded(NamedTuple):
    """A seeded archive (SQLite or PostgreSQL) with its views and index caught up."""

    url: str
    store: EventStore
    views: Views
    search: SearchIndex

    def catch_up(self) -> None:
        for projection in self.views.projections():
            LogFollower(self.store, projection, commit_interval=60).catch_up()
        projection = SearchIndexProjection(self.search.location)
        SearchIndexer(self.store, projection, commit_interval=0.05).catch_up()
        projection.close()

    def close(self) -> None:
        self.views.close()
        self.store.close()


@contextmanager
def archive_url(kind: str, base: Path) -> Iterator[str]:
    """An empty store of ``kind``: a SQLite file under ``base``, or a PostgreSQL schema of its own."""
    if kind == "sqlite":
        yield f"sqlite:///{base}/events.sqlite"
    else:
        with fresh_schema_url() as url:
            yield url


def build_seeded(base: Path, url: str | None = None) -> Seeded:
    url = url or f"sqlite:///{base}/events.sqlite"
    store = open_event_store(url)
    store.append(seed_events())
    location = IndexLocation(base / "index")
    SearchIndexProjection(location).close()  # the first generation, so that a reader can open it
    views_url = url if url.startswith("postgresql") else f"sqlite:///{base}/views.sqlite"
    seeded = Seeded(url, store, Views(views_url, store), SearchIndex(location, reload_interval=0))
    seeded.catch_up()
    return seeded


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def store_kind(request) -> str:
    """Every API, page and widget test runs on both stores (PostgreSQL at parity)."""
    return request.param


@pytest.fixture(scope="session")
def seeded(store_kind, tmp_path_factory):
    """Shared by the tests that only read: they must not append to it."""
    base = tmp_path_factory.mktemp(f"seeded-{store_kind}")
    with archive_url(store_kind, base) as url:
        archive = build_seeded(base, url)
        yield archive
        archive.close()


@pytest.fixture
def private_seeded(store_kind, tmp_path):
    """An archive of the test's own, for tests that append events."""
    with archive_url(store_kind, tmp_path) as url:
        archive = build_seeded(tmp_path, url)
        yield archive
        archive.close()


@pytest.fixture
def seeded_url(seeded) -> str:
    return seeded.url


@pytest.fixture
def sqlite_url(seeded_url) -> str:
    """The seeded archive's URL under its name from before it ran on PostgreSQL too (for branches
    written against that name); new tests use ``seeded_url``."""
    return seeded_url


@pytest.fixture
def archive(seeded):
    return seeded.store


@pytest.fixture
def views(seeded):
    return seeded.views


@pytest.fixture
def search_index(seeded):
    return seeded.search


@pytest.fixture
def token_store(seeded_url):
    tokens = open_token_store(seeded_url, cache_seconds=0)
    yield tokens
    tokens.close()


@pytest.fixture
def tokens(token_store) -> dict[str, str]:
    """One token per caller kind: compliance, analyst (lobby), site (static list: lobby and public)."""
    return {
        "compliance": token_store.create(Role.COMPLIANCE)[0],
        "analyst": token_store.create(Role.ANALYST, (LOBBY,))[0],
        "site": token_store.create(Role.SITE, (LOBBY, PUBLIC))[0],
    }


@pytest.fixture
def api_settings() -> dict:
    """Overrides of [api] for the app fixture (tests may update it before using ``app``)."""
    return {"anonymous_read": True, "public_rooms": (PUBLIC,), "follow_heartbeat": 0.5}


@pytest.fixture
def app(archive, views, search_index, token_store, seeded_url, seeded_signer, api_settings):
    config = make_config(seeded_url, **api_settings)
    app = create_app(
        config, store=archive, views=views, search=search_index, tokens=token_store, signer=seeded_signer
    )
    yield app
    app.extensions[EXTENSION].exports.close()  # before the store its jobs read is closed


@contextmanager
def store_signer(url: str) -> Iterator[Signer]:
    """The signer of the archive at ``url`` (its keys kept in the store), as ``create_app`` opens it;
    its database connection closed afterwards (PostgreSQL allows only so many)."""
    database = open_database(url)
    try:
        yield Signer(KeyRing(KeyStore(database).load))
    finally:
        database.close()


@pytest.fixture(scope="session")
def seeded_signer(seeded):
    with store_signer(seeded.url) as signer:
        yield signer


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def private_app(private_seeded, token_store, api_settings):
    """The app over ``private_seeded`` (same tokens as ``app``)."""
    config = make_config(private_seeded.url, **api_settings)
    with store_signer(private_seeded.url) as signer:
        app = create_app(
            config, store=private_seeded.store, views=private_seeded.views, search=private_seeded.search,
            tokens=token_store, signer=signer,
        )  # fmt: skip
        yield app
        app.extensions[EXTENSION].exports.close()


def auth(token: str, user: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if user:
        headers["X-Chat-Archive-User"] = user
    return headers


class PermissionSite:
    """A real HTTP server answering the permission callback from a (user, room) -> allowed table:
    ``?user=U&room=R1&room=R2...`` answered ``{"allowed": [the rooms U may see]}``."""

    def __init__(self):
        self.allowed: set[tuple[str, str]] = set()
        self.requests: list[dict] = []
        self.broken = False
        self.delay = 0.0  # seconds each answer is held back, or until ``release`` is set
        self.release = threading.Event()
        self._site = HttpSite(self._answer)
        self.url = f"{self._site.origin}/archive/permission"

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        pairs = urllib.parse.parse_qsl(urllib.parse.urlparse(path).query)
        user = dict(pairs).get("user")
        rooms = [value for name, value in pairs if name == "room"]
        self.requests.append({"user": user, "rooms": rooms, "authorization": headers.get("Authorization")})
        self.release.wait(self.delay)
        if self.broken:
            return 500, "text/plain", b""
        allowed = [room for room in rooms if (user, room) in self.allowed]
        return 200, "application/json", json.dumps({"allowed": allowed}).encode()

    def close(self):
        self.release.set()
        self._site.close()


@pytest.fixture
def permission_site():
    site = PermissionSite()
    yield site
    site.close()
