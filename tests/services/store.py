"""Event stores on both backends: every store test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from archive.application import open_event_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A store URL for a fresh, empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.sqlite"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def event_store(store_url):
    store = open_event_store(store_url)
    yield store
    store.close()
