"""The API over a PostgreSQL store: events, views and tokens all in one PostgreSQL schema."""

from __future__ import annotations

import json

import pytest

from archive.application import open_event_store
from projections.search import IndexLocation, SearchIndex
from projections.views import Views
from query_api import create_app
from query_api.roles import Role
from query_api.tokens import open_token_store

from .conftest import LOBBY, SECRET, Seeded, auth, make_config, seed_events


@pytest.fixture
def postgres_app(postgres_url, tmp_path):
    store = open_event_store(postgres_url)
    store.append(seed_events())
    seeded = Seeded(postgres_url, store, Views(postgres_url, store), SearchIndex(IndexLocation(tmp_path / "index"), reload_interval=0))
    seeded.catch_up()
    tokens = open_token_store(postgres_url, cache_seconds=0)
    app = create_app(make_config(postgres_url), store=store, views=seeded.views, search=seeded.search, tokens=tokens)
    yield app, tokens
    tokens.close()
    seeded.close()


def test_endpoints_on_postgresql(postgres_app):
    app, tokens = postgres_app
    client = app.test_client()
    compliance = auth(tokens.create(Role.COMPLIANCE)[0])
    site = auth(tokens.create(Role.SITE, (LOBBY,))[0], "carol")
    events = client.get(f"/api/v1/rooms/{LOBBY}/events", headers=compliance).get_data(as_text=True).splitlines()
    assert len(events) == 11 and json.loads(events[0])["event"]["type"] == "occupant_joined"
    lines = client.get(f"/api/v1/rooms/{LOBBY}/transcript", headers=site).json["lines"]
    assert [line.get("body") for line in lines if line["kind"] == "message"] == ["hello from lobby", "fixed in lobby", None]
    assert client.get(f"/api/v1/rooms/{SECRET}/transcript", headers=site).status_code == 404
    assert client.get("/api/v1/search?q=hello", headers=site).json["total"] == 1
    assert [r["room"] for r in client.get("/api/v1/rooms", headers=site).json["rooms"]] == [LOBBY]
    assert client.get(f"/api/v1/export?room={SECRET}&format=csv", headers=compliance).status_code == 200
    assert client.get("/api/v1/events", headers=auth("cat_forged")).status_code == 401
