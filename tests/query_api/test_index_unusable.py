"""The API while the search index cannot be used (an earlier schema, which `up` rebuilds in the background):
searches answer a 503 that says so, everything that does not need the index answers as before."""

from __future__ import annotations

from projections.search import SearchIndexProjection
from query_api import create_app
from query_api.roles import Role
from query_api.tokens import open_token_store
from tests.projections.search.old_schema import downgrade

from .conftest import LOBBY, auth, make_config
from .web.test_pages import sign_in


def test_searches_answer_503_and_rooms_transcripts_and_metrics_still_answer(private_seeded):
    url, store = private_seeded.url, private_seeded.store
    downgrade(SearchIndexProjection(private_seeded.search.location))
    tokens = open_token_store(url, cache_seconds=0)
    try:
        token = tokens.create(Role.COMPLIANCE)[0]
        app = create_app(make_config(url), store=store, views=private_seeded.views, search=private_seeded.search,
                         tokens=tokens)
        client = app.test_client()
        searched = client.get("/api/v1/search?q=hello", headers=auth(token))
        assert searched.status_code == 503 and searched.json["error"]["code"] == "search_index_unusable"
        assert "rebuilt" in searched.json["error"]["message"] and searched.headers["Retry-After"]
        rooms = client.get("/api/v1/rooms", headers=auth(token))
        assert rooms.status_code == 200, rooms.get_data(as_text=True)
        assert {room["room"]: room["messages"] for room in rooms.json["rooms"]}[LOBBY] is None
        transcript = client.get(f"/api/v1/rooms/{LOBBY}/transcript?from=2024-01-01", headers=auth(token))
        assert transcript.status_code == 200 and transcript.json["lines"]
        metrics = client.get("/metrics", headers=auth(token))
        assert metrics.status_code == 200
        assert f"chat_archive_index_lag_events {store.head()}" in metrics.get_data(as_text=True)
        browser = app.test_client()
        assert sign_in(browser, token).status_code == 303
        page = browser.get("/rooms")
        assert page.status_code == 200 and LOBBY in page.text
    finally:
        tokens.close()
