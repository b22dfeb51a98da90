"""Tokens: stored hashed in the store's database on both backends; created, listed, revoked by CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import sqlite3
import time

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from archive.application import StoreLocation, open_event_store
from archive.errors import ConfigError, NotFoundError
from archive.times import utcnow
from chat_archive.cli import main
from query_api.roles import Role
from query_api.tokens import hash_token, open_token_store

CLI = str(Path(sys.executable).with_name("chat-archive"))


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


def test_lookup_cache_delays_revocation_only_as_configured(seeded_url):
    cached = open_token_store(seeded_url, cache_seconds=60)
    other_process = open_token_store(seeded_url, cache_seconds=0)
    token, info = cached.create(Role.COMPLIANCE)
    assert cached.lookup(token) == info
    other_process.revoke(info.id)
    assert cached.lookup(token) == info  # within the cache's lifetime
    assert other_process.lookup(token) is None


def archive_config(tmp_path):
    """A config file naming an archive, which is there: `token` commands make none (tests/cli/test_no_archive_made)."""
    config = tmp_path / "chat-archive.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/events.sqlite"\n')
    open_event_store(f"sqlite:///{tmp_path}/events.sqlite").close()
    return config


def test_token_commands(tmp_path, capsys):
    config = archive_config(tmp_path)
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
    assert main(["--config", str(config), "token", "create", "--role", "analyst"]) == 2  # a bad argument


def test_tokens_expire_and_record_their_last_use(store_tokens):
    lasting, info = store_tokens.create(Role.COMPLIANCE, expires_at=utcnow() + timedelta(days=30))
    assert info.expires_at and store_tokens.lookup(lasting) == info
    (listed,) = store_tokens.list()
    assert listed.last_used_at is not None and listed.expires_at == info.expires_at
    brief, _ = store_tokens.create(Role.COMPLIANCE, expires_at=utcnow() + timedelta(seconds=1))
    assert store_tokens.lookup(brief) is not None
    deadline = utcnow() + timedelta(seconds=5)
    while store_tokens.lookup(brief) is not None and utcnow() < deadline:
        time.sleep(0.1)
    assert store_tokens.lookup(brief) is None  # expired: refused like a revoked token
    with pytest.raises(ConfigError):
        store_tokens.create(Role.COMPLIANCE, expires_at=utcnow() - timedelta(seconds=1))


def test_an_expired_token_is_refused_even_while_its_lookup_is_cached(seeded_url):
    cached = open_token_store(seeded_url, cache_seconds=60)
    token, _ = cached.create(Role.COMPLIANCE, expires_at=utcnow() + timedelta(seconds=1))
    assert cached.lookup(token) is not None
    deadline = utcnow() + timedelta(seconds=5)
    while cached.lookup(token) is not None and utcnow() < deadline:
        time.sleep(0.1)
    assert cached.lookup(token) is None


def test_a_token_table_from_before_expiry_gains_the_columns(tmp_path):
    path = tmp_path / "events.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE api_tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, "
            "rooms TEXT NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)"
        )
        conn.execute(
            "INSERT INTO api_tokens VALUES ('abc', ?, 'compliance', '[]', 'old', '2024-01-01T00:00:00Z', NULL)",
            (hash_token("cat_old"),),
        )
    tokens = open_token_store(f"sqlite:///{path}", cache_seconds=0)
    assert tokens.lookup("cat_old").expires_at is None
    assert tokens.list()[0].last_used_at is not None


def test_token_commands_with_expiry_and_last_use(tmp_path, capsys):
    config = archive_config(tmp_path)
    assert main(["--config", str(config), "token", "create", "--role", "compliance", "--expires", "30d"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["--config", str(config), "token", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert "last used" in listing[0] and "expires 20" in listing[1] and "never" in listing[1]
    open_token_store(f"sqlite:///{tmp_path}/events.sqlite", cache_seconds=0).lookup(token)
    assert main(["--config", str(config), "token", "list"]) == 0
    assert "never" not in capsys.readouterr().out.splitlines()[1]
    with pytest.raises(SystemExit):
        main(["--config", str(config), "token", "create", "--role", "compliance", "--expires", "soon"])
    assert "duration such as 30d" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # past datetime's years: a bad argument too, not a traceback
        main(["--config", str(config), "token", "create", "--role", "compliance", "--expires", "99999999999d"])
    assert "duration such as 30d" in capsys.readouterr().err


def test_a_session_naming_an_expired_token_by_id_is_refused(sqlite_url):
    tokens = open_token_store(sqlite_url, cache_seconds=60)
    token, info = tokens.create(Role.COMPLIANCE, expires_at=utcnow() + timedelta(seconds=1))
    assert tokens.lookup_id(info.id) is not None
    deadline = utcnow() + timedelta(seconds=5)
    while tokens.lookup_id(info.id) is not None and utcnow() < deadline:
        time.sleep(0.1)
    assert tokens.lookup_id(info.id) is None and tokens.lookup(token) is None


def test_token_list_shows_hostile_labels_and_rooms_escaped_on_one_line(tmp_path, capsys):
    """A label or room grant went to the operator's terminal as given: a line break forged a token line of its
    own in the listing, a terminal escape reached the terminal."""
    config = archive_config(tmp_path)
    assert main(["--config", str(config), "token", "create", "--role", "site", "--rooms", "a@x",
                 "--label", "ops\x1b[2J\u202e"]) == 0
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "events.sqlite") as db:  # a grant `token create` now refuses, kept from before
        db.execute("UPDATE api_tokens SET rooms = ?", (json.dumps(["a@x\nfeedface  compliance"]),))
    assert main(["--config", str(config), "token", "list"]) == 0
    [_, line] = capsys.readouterr().out.splitlines()
    assert "\x1b" not in line and "\u202e" not in line
    assert "a@x\\x0afeedface  compliance" in line and "(ops\\x1b[2J\\u202e)" in line


def test_token_create_refuses_a_grant_that_can_name_no_room(tmp_path, capsys):
    """Grants are matched as room JIDs (in any case), or as globs written '*@service' or 'glob:PATTERN': a grant
    of another form ('lobby', a JID with a resource, 'glob:' and nothing) was stored and matched no room, silently."""
    config = archive_config(tmp_path)
    create = ["--config", str(config), "token", "create", "--role", "site", "--rooms", "a@x"]
    for grant in ("lobby", "lobby@x/phone", "https://x/lobby@x", "glob:", "glob:lobby*", "a@x\nb@x", " a@x"):
        assert main([*create, grant]) == 2, grant
        captured = capsys.readouterr()
        assert not captured.out and "--rooms" in captured.err and "not a room's JID" in captured.err
    assert main([*create, "Lobby@X", "*@conference.x", "glob:team-?@conference.x"]) == 0


@pytest.mark.parametrize("given", ["5x", "soon", "2025-13-01"])
def test_a_bad_expiry_is_quoted_as_typed(tmp_path, given):
    """`--expires 5x` said "'+5x' is not a time": the sign the command adds to a duration, not what was typed."""
    result = subprocess.run([CLI, "token", "create", "--role", "compliance", "--expires", given], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"'{given}' is not a time" in result.stderr and "'+" not in result.stderr, result.stderr
    assert "duration such as 30d" in result.stderr
