"""The people of a range come from the presence view alone: a range of a room with a long transcript cost a
decode of every line in it (anonymous callers may ask this of a public room), enough to hold a worker."""

from __future__ import annotations

from archive import events as ev
from projections.presence import queries as presence_queries
from projections.presence.queries import MAX_STAYS
from query_api import create_app
from query_api.params import encode_cursor
from query_api.roles import Role
from query_api.tokens import open_token_store

from tests.factories import at, make

from .conftest import LOBBY, PUBLIC, auth, make_config

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


def test_the_stays_of_a_range_are_read_a_bounded_number_at_a_time(private_seeded, private_app):
    """One person's many stays in a public room's range: an anonymous request read up to limit x 1,000 stays
    (and dropped a person's stays past the 1,000th without a ``next``). A page now reads at most MAX_STAYS
    stays and continues, mid-person if need be, from a signed cursor."""
    many = MAX_STAYS + 5
    events = []
    for i in range(many):
        events += [make(ev.OccupantJoined, 100 + 2 * i, room=PUBLIC, nick="zed"),
                   make(ev.OccupantLeft, 101 + 2 * i, room=PUBLIC, nick="zed")]
    private_seeded.store.append(events)
    private_seeded.catch_up()
    client = private_app.test_client()
    span = f"from={at(0):%Y-%m-%dT%H:%M:%SZ}&to={at(100 + 2 * many):%Y-%m-%dT%H:%M:%SZ}"
    pages, url = [], f"/api/v1/rooms/{PUBLIC}/presence?{span}&limit=1000"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        pages.append(response.json["stays"])
        assert len(pages[-1]) <= MAX_STAYS
        cursor = response.json["next"]
        url = f"/api/v1/rooms/{PUBLIC}/presence?{span}&limit=1000&cursor={cursor}" if cursor else None
    assert len(pages) == 2
    zeds = [s for page in pages for s in page if s["nicks"] == ["zed"]]
    assert len(zeds) == many
    assert len({s["id"] for s in zeds}) == many
    assert sorted(s["nicks"][0] for page in pages for s in page if s["nicks"] != ["zed"]) == ["alice", "bob", "eve"]


def test_a_presence_cursor_holds_a_stay_number(private_app):
    client = private_app.test_client()
    with private_app.app_context():
        forged = encode_cursor({"after": "zed", "stay": "x"}, "presence")
    response = client.get(f"/api/v1/rooms/{PUBLIC}/presence?{SPAN}&cursor={forged}")
    assert response.status_code == 400


def pages_of(client, url):
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        pages.append(response.json["stays"])
        cursor = response.json["next"]
        url = f"{url.partition('&cursor=')[0]}&cursor={cursor}" if cursor else None
    return pages


def test_the_stays_of_a_range_are_read_a_bounded_number_of_spans_at_a_time(private_seeded, private_app, monkeypatch):
    """A stay holds a span per status change (a client toggling away all year holds thousands): a page read
    every span of up to 1,000 stays, one person's stays (nick=) too, and dropped those past ``limit``
    without a ``next``."""
    monkeypatch.setattr(presence_queries, "MAX_SPANS", 5)
    events = []
    for i in range(4):
        events += [make(ev.OccupantJoined, 100 + 3 * i, room=PUBLIC, nick="zed"),
                   make(ev.PresenceChanged, 101 + 3 * i, room=PUBLIC, nick="zed", show="away"),
                   make(ev.OccupantLeft, 102 + 3 * i, room=PUBLIC, nick="zed")]
    private_seeded.store.append(events)
    private_seeded.catch_up()
    client = private_app.test_client()
    span = f"from={at(0):%Y-%m-%dT%H:%M:%SZ}&to={at(200):%Y-%m-%dT%H:%M:%SZ}"
    everyone = pages_of(client, f"/api/v1/rooms/{PUBLIC}/presence?{span}&limit=1000")
    assert all(sum(len(s["spans"]) for s in page) <= 5 for page in everyone)
    zeds = [s for page in everyone for s in page if s["nicks"] == ["zed"]]
    assert len({s["id"] for s in zeds}) == len(zeds) == 4 and all(len(s["spans"]) == 2 for s in zeds)
    assert sorted(s["nicks"][0] for page in everyone for s in page if s["nicks"] != ["zed"]) == ["alice", "bob", "eve"]
    one = pages_of(client, f"/api/v1/rooms/{PUBLIC}/presence?{span}&nick=zed&limit=3")
    assert [len(page) for page in one] == [2, 2]
    assert sorted(s["id"] for page in one for s in page) == sorted(s["id"] for s in zeds)


def test_occupancy_of_a_range_of_too_many_spans_is_a_bad_request(private_app, monkeypatch):
    monkeypatch.setattr(presence_queries, "MAX_OCCUPANCY_SPANS", 1)
    response = private_app.test_client().get(f"/api/v1/rooms/{PUBLIC}/presence?from=2000-01-01T00:00:00Z&to=2030-01-01T00:00:00Z")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "shorter" in response.json["error"]["message"]


def test_a_one_person_cursor_is_not_a_people_cursor(private_app):
    client = private_app.test_client()
    with private_app.app_context():
        stays_of_one = encode_cursor({"stay": 3}, "presence")
        people = encode_cursor({"after": "zed"}, "presence")
    assert client.get(f"/api/v1/rooms/{PUBLIC}/presence?{SPAN}&cursor={stays_of_one}").status_code == 400
    assert client.get(f"/api/v1/rooms/{PUBLIC}/presence?{SPAN}&nick=zed&cursor={people}").status_code == 400
