"""The API stage's search index: one the bench's workdir kept from a run of an earlier schema is rebuilt."""

from __future__ import annotations

from archive.application import open_event_store
from bench.api import ensure_views_and_index
from bench.setup import bench_config
from chat_archive.bootstrap import open_search_index, search_projection
from projections.rebuild import rebuild
from tests.projections.search.old_schema import downgrade

from .test_stages import built


def test_an_index_of_an_earlier_schema_is_rebuilt_not_an_error(tmp_path, capsys):
    built(tmp_path)
    config = bench_config(tmp_path)
    with open_event_store(config.store.url) as store:
        rebuild(store, [search_projection(config)], progress=False)
        downgrade(search_projection(config))  # as a run before the last schema change left it
        ensure_views_and_index(config, "SQLite", None)
        assert open_search_index(config).position() == store.head()
    assert "building the search index" in capsys.readouterr().out
