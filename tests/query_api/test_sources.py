"""Transcript, search, rooms and presence answers come from the views and the index, never the event log."""

from __future__ import annotations

import pytest

from query_api import create_app

from .conftest import LOBBY, auth, make_config


class LogUntouchable:
    """The real store, except that reading events fails the request (room list and head still work)."""

    def __init__(self, store):
        self._store = store

    def rooms(self):
        return self._store.rooms()

    def head(self):
        return self._store.head()

    def append_audit(self, record):  # a read is recorded, not read from the log
        return self._store.append_audit(record)

    def read_log(self, *args, **kwargs):
        raise AssertionError("the event log was read")

    def read_room(self, *args, **kwargs):
        raise AssertionError("a room's events were read")


@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/rooms/{LOBBY}/transcript",
        f"/api/v1/rooms/{LOBBY}/transcript?format=html&day=2024-05-01",
        f"/api/v1/rooms/{LOBBY}/transcript?format=text&around=m2-lobby",
        "/api/v1/search?q=hello&sort=newest",
        "/api/v1/rooms",
        f"/api/v1/rooms/{LOBBY}/presence?at=2024-05-01T12:00:15Z",
        f"/api/v1/rooms/{LOBBY}/presence?from=2024-05-01&to=2024-05-02",
    ],
)
def test_served_without_reading_the_log(archive, views, search_index, token_store, tokens, seeded_url, url):
    app = create_app(make_config(seeded_url), store=LogUntouchable(archive), views=views, search=search_index, tokens=token_store)
    response = app.test_client().get(url, headers=auth(tokens["compliance"]))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_the_guard_does_catch_a_log_read(archive, views, search_index, token_store, tokens, seeded_url):
    app = create_app(make_config(seeded_url), store=LogUntouchable(archive), views=views, search=search_index, tokens=token_store)
    response = app.test_client().get(f"/api/v1/rooms/{LOBBY}/events", headers=auth(tokens["compliance"]))
    assert response.status_code == 500  # replay reads the room's events: the guard refuses
