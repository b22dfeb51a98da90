"""`migrate` copies every table and column the API keeps in the store's database: checked against the live
schema of a store the API has run on, so a table or column added without telling the copy fails here."""

from __future__ import annotations

from archive.application import open_event_store
from projections.viewdb_backends import default_views_url
from projections.views import Views
from query_api import create_app
from query_api.server_tables import TABLES
from query_api.tokens import open_database
from tests.query_api.conftest import make_config

SQLITE_COLUMNS = "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'"
POSTGRES_COLUMNS = "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"


def live_columns(store_url: str) -> dict[str, set[str]]:
    """Every table of the store's database (its schema, on PostgreSQL) with its columns, as the database has them."""
    database = open_database(store_url)
    try:
        rows = database.query(SQLITE_COLUMNS if store_url.startswith("sqlite") else POSTGRES_COLUMNS)
    finally:
        database.close()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


def test_the_copy_covers_every_table_and_column_the_api_makes(store_url, tmp_path):
    with open_event_store(store_url) as store, Views(default_views_url(store_url), store) as views:
        archive_own = live_columns(store_url)  # the log's, the projections' (on PostgreSQL, the same schema)
        app = create_app(make_config(store_url, export_dir=str(tmp_path / "exports")), store=store, views=views)
        with app.test_client() as client:  # a request, so that tables made on first use are made too
            client.get("/api/v1/rooms")
        made_by_the_api = {t: c for t, c in live_columns(store_url).items() if t not in archive_own}
    assert made_by_the_api == {table.name: set(table.column_names) for table in TABLES}
