"""Tokens: stored hashed in the store's database on both backends; created, listed, revoked by CLI."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from archive.application import StoreLocation
from archive.errors import ConfigError, NotFoundError
from chat_archive.cli import main
from query_api.roles import Role
from query_api.tokens import hash_token, open_token_store


@pytest.fixture
def store_tokens(store_url):
    tokens = open_token_store(store_url, cache_seconds=0)
    yield tokens
    tokens.close()


def stored_rows(store_url: str) -> list[tuple]:
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            return conn.execute("SELECT * FROM api_tokens").fetchall()
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres") as conn:
        return conn.execute(f'SELECT * FROM "{location.schema}".api_tokens').fetchall()


def test_create_lookup_list_revoke(store_tokens, store_url):
    token, info = store_tokens.create(Role.ANALYST, ("lobby@conference.localhost",), "ana")
    assert store_tokens.lookup(token) == info
    assert store_tokens.lookup(token + "x") is None
    assert [t.id for t in store_tokens.list()] == [info.id]
    rows = stored_rows(store_url)
    assert token not in repr(rows) and hash_token(token) in repr(rows)
    revoked = store_tokens.revoke(info.id)
    assert revoked.revoked_at is not None
    assert store_tokens.lookup(token) is None
    with pytest.raises(NotFoundError):
        store_tokens.revoke(info.id)


def test_analyst_needs_rooms_and_anonymous_is_no_token_role(store_tokens):
    with pytest.raises(ConfigError):
        store_tokens.create(Role.ANALYST)
    with pytest.raises(ConfigError):
        store_tokens.create(Role.ANONYMOUS)


def test_lookup_cache_delays_revocation_only_as_configured(sqlite_url):
    cached = open_token_store(sqlite_url, cache_seconds=60)
    other_process = open_token_store(sqlite_url, cache_seconds=0)
    token, info = cached.create(Role.COMPLIANCE)
    assert cached.lookup(token) == info
    other_process.revoke(info.id)
    assert cached.lookup(token) == info  # within the cache's lifetime
    assert other_process.lookup(token) is None


def test_token_commands(tmp_path, capsys):
    config = tmp_path / "chat-archive.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/events.sqlite"\n')
    assert main(["--config", str(config), "token", "create", "--role", "site", "--rooms", "a@x", "b@x", "--label", "intranet"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cat_")
    assert main(["--config", str(config), "token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "site" in listing and "a@x b@x" in listing and "intranet" in listing and token not in listing
    token_id = listing.splitlines()[1].split()[0]
    assert main(["--config", str(config), "token", "revoke", token_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["--config", str(config), "token", "revoke", token_id]) == 1
    assert main(["--config", str(config), "token", "create", "--role", "analyst"]) == 1
