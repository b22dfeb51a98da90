"""The people of a range come from the presence view alone: a range of a room with a long transcript cost a
decode of every line in it (anonymous callers may ask this of a public room), enough to hold a worker."""

from __future__ import annotations

from query_api import create_app
from query_api.roles import Role
from query_api.tokens import open_token_store

from .conftest import LOBBY, auth, make_config

SPAN = "from=2024-05-01T12:00:00Z&to=2024-05-01T12:02:00Z"


def test_the_people_of_a_range_are_found_without_reading_the_transcript(private_seeded):
    url = private_seeded.url
    tokens = open_token_store(url, cache_seconds=0)
    try:
        token = tokens.create(Role.ANALYST, (LOBBY,))[0]
        app = create_app(make_config(url), store=private_seeded.store, views=private_seeded.views,
                         search=private_seeded.search, tokens=tokens)
        client = app.test_client()
        before = client.get(f"/api/v1/rooms/{LOBBY}/presence?{SPAN}", headers=auth(token))
        assert before.status_code == 200
        recorder = private_seeded.views.recorder
        live = recorder.generations("transcripts")[0]
        recorder.add_indexes("transcripts", live, ["DROP TABLE {lines}"])
        after = client.get(f"/api/v1/rooms/{LOBBY}/presence?{SPAN}", headers=auth(token))
        assert after.status_code == 200, after.get_data(as_text=True)
        assert after.json == before.json
        assert sorted(s["nicks"][0] for s in after.json["stays"]) == ["alice", "bob", "eve"]
    finally:
        tokens.close()
