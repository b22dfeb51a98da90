"""Views over the `event_store` fixture, on its backend (SQLite file beside it, or its PostgreSQL schema)."""

from __future__ import annotations

import pytest

from projections.follower import LogFollower
from projections.viewdb_backends import default_views_url
from projections.views import Views


@pytest.fixture
def views_url(store_url):
    return default_views_url(store_url)


@pytest.fixture
def views(event_store, views_url):
    with Views(views_url, event_store) as opened:
        yield opened


def catch_up(store, views, names=None) -> list[int]:
    """Apply the whole log to the views' projections and commit; their positions."""
    return [LogFollower(store, p, commit_interval=60).catch_up() for p in views.projections(names)]


def dump(views: Views) -> dict:
    """Every row of the live transcript and presence tables, and the positions."""
    tables = {"transcripts": ["lines", "refs", "rooms"], "presence": ["spans", "gaps"]}
    out = {}
    for name, names in tables.items():
        for table in names:
            order = "ref_key, id" if table == "refs" else "id"
            rows = views.recorder.read(
                name, lambda query, _g, t=table, o=order: query(f"SELECT * FROM {{{t}}} ORDER BY {o}")
            )
            out[f"{name}.{table}"] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in dict(r).values())
                                      for r in rows]
        out[f"{name}.position"] = views.projections([name])[0].position()
    return out
