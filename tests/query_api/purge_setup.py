"""The purge tests' world on both stores: an archive with old and recent events, its views and index, an app
and a compliance token (the ``setup`` fixture); ``found``: what each endpoint still shows of a room."""

from __future__ import annotations

import pytest

from archive.application import open_event_store
from archive.settings import RetentionSettings, StoreSettings
from chat_archive.bootstrap import open_search_index, open_views, rebuild_projections
from chat_archive.config import Config
from projections.settings import IndexSettings
from query_api import create_app
from query_api.roles import Role
from query_api.settings import ApiSettings
from query_api.tokens import open_token_store
from tests.factories import message

from .conftest import LOBBY, auth, seed_events


RECENT = "still within retention"


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request, tmp_path):
    url = f"sqlite:///{tmp_path}/events.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    config = Config(store=StoreSettings(url=url), index=IndexSettings(path=str(tmp_path / "index")),
                    retention=RetentionSettings(default_days=30), api=ApiSettings())
    store = open_event_store(url)
    from archive.times import utcnow

    store.append([*seed_events(), message(0, RECENT, "alice", room=LOBBY, occurred_at=utcnow())])
    rebuild_projections(config, store, ["transcripts", "presence", "search"], progress=False)
    views, search = open_views(config, store), open_search_index(config)
    tokens = open_token_store(url, cache_seconds=0)
    compliance = auth(tokens.create(Role.COMPLIANCE)[0])
    app = create_app(config, store=store, views=views, search=search, tokens=tokens)
    yield config, store, app.test_client(), compliance, search
    tokens.close()
    views.close()
    store.close()


def found(client, headers, room) -> dict:
    search = client.get("/api/v1/search?q=lobby OR secret OR oops OR hello OR typo OR fixed", headers=headers).json
    transcript = client.get(f"/api/v1/rooms/{room}/transcript?from=2024-01-01", headers=headers).json
    events = client.get(f"/api/v1/rooms/{room}/events", headers=headers).get_data(as_text=True).splitlines()
    export = client.get(f"/api/v1/export?room={room}", headers=headers).get_data(as_text=True).splitlines()
    log = client.get("/api/v1/events", headers=headers).get_data(as_text=True)
    return {
        "search": sorted({hit["room"] for hit in search["hits"]}),
        "transcript": [line.get("body") for line in transcript["lines"] if line["kind"] == "message"],
        "events": len(events),
        "export": len(export) - 1,  # the digest line
        "log": sum(1 for line in log.splitlines() if f'"room":"{room}"' in line),
    }
