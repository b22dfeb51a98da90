"""API tokens: created once, shown once, stored only as a SHA-256 hash.

Tokens live in the event store's own database (table ``api_tokens``): in the
SQLite file of a SQLite store, in the schema of a PostgreSQL store, so that a
backup of the archive carries its tokens and no other file has to be managed.
A token is 32 random bytes; its hash is the lookup key, so the database never
holds anything that would let a reader act as a caller. A token may expire; its
last use is recorded when a lookup misses the cache (so to within the cache's
lifetime), which keeps token checks from writing on every request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

from archive.application import StoreLocation, ensure_postgres_schema, prepare_sqlite_path
from archive.errors import ConfigError, NotFoundError, StoreError
from archive.events import room_problem
from archive.times import format_time, parse_time, utcnow

from .cache import TtlCache
from .roles import TOKEN_ROLES, Role
from .tables import Table

GLOB_PREFIX = "glob:"


def grant_glob(grant: str) -> str | None:
    """The shell glob a (lowercased) room grant stands for: ``*@service`` (every room of that service) or a
    grant written ``glob:PATTERN`` (``glob:team-?@conference.example.org``). None: it names one room, its
    characters taken literally (room names may hold ``*``, ``?`` and ``[``)."""
    if grant.startswith(GLOB_PREFIX):
        return grant[len(GLOB_PREFIX) :]
    return grant if grant.partition("@")[0] == "*" else None


def grant_problem(grant: str) -> str | None:
    """Why ``grant`` can match no room (None: it can): the room it names, or its glob, has a room's JID form."""
    glob = grant_glob(grant.lower())
    return room_problem(grant if glob is None else glob)

TOKEN_PREFIX = "cat_"
TABLE = Table(
    "api_tokens",
    (("id", "TEXT PRIMARY KEY"), ("hash", "TEXT NOT NULL UNIQUE"), ("role", "TEXT NOT NULL"), ("rooms", "TEXT NOT NULL"),
     ("label", "TEXT NOT NULL"), ("created_at", "TEXT NOT NULL"), ("revoked_at", "TEXT"),
     ("expires_at", "TEXT"), ("last_used_at", "TEXT")),
    added=("expires_at", "last_used_at"),  # tokens made before they could expire start empty: no expiry
)  # fmt: skip


@dataclass(frozen=True)
class TokenInfo:
    """What a token stands for (never the token itself)."""

    id: str
    role: Role
    rooms: tuple[str, ...]
    label: str
    created_at: str
    revoked_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and parse_time(self.expires_at) <= now


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Create, look up, list and revoke tokens in a SQLite file or a PostgreSQL schema."""

    def __init__(self, database: _Database, *, cache_seconds: float = 5.0):
        self._db = database
        self._cache: TtlCache[TokenInfo | None] = TtlCache(cache_seconds)
        TABLE.create(self._db)

    def create(
        self, role: Role, rooms: tuple[str, ...] = (), label: str = "", expires_at: datetime | None = None
    ) -> tuple[str, TokenInfo]:
        """A new token (to be shown once) and what it stands for; it stops working at ``expires_at``."""
        if role not in TOKEN_ROLES:
            raise ConfigError(f"a token's role is one of {', '.join(r.value for r in TOKEN_ROLES)}")
        if role is Role.ANALYST and not rooms:
            raise ConfigError("an analyst token needs --rooms (room JIDs, '*@conference.example.org' or 'glob:PATTERN')")
        problem = next(filter(None, map(grant_problem, rooms)), None)
        if problem:
            raise ConfigError(f"--rooms: {problem} (grant room JIDs, '*@conference.example.org' or 'glob:PATTERN')")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = hash_token(token)
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise ConfigError("a token's expiry must lie in the future")
        expiry = format_time(expires_at) if expires_at is not None else None
        info = TokenInfo(digest[:12], role, tuple(rooms), label, format_time(now), expires_at=expiry)
        self._db.execute(
            "INSERT INTO api_tokens (id, hash, role, rooms, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (info.id, digest, role.value, json.dumps(list(rooms)), label, info.created_at, expiry),
        )
        return token, info

    def lookup(self, token: str) -> TokenInfo | None:
        """What a presented token stands for, or None if it is unknown, revoked or expired."""
        digest = hash_token(token)
        info = self._cache.get_or_compute(digest, lambda: self._lookup(digest))
        # Checked on every call, not only when cached: a token stops working when it expires.
        return None if info is None or info.expired(utcnow()) else info

    def lookup_id(self, token_id: str) -> TokenInfo | None:
        """What the token with this id stands for (for signed sessions and tickets, which name
        the token by id, never carrying it), or None if it is unknown, revoked or expired."""
        info = self._cache.get_or_compute(("id", token_id), lambda: self._lookup(token_id, "id"))
        return None if info is None or info.expired(utcnow()) else info

    def _lookup(self, value: str, column: str = "hash") -> TokenInfo | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM api_tokens WHERE {column} = ? AND revoked_at IS NULL", (value,))
        if not rows:
            return None
        info = _info(rows[0])
        if not info.expired(utcnow()):
            self._db.execute(f"UPDATE api_tokens SET last_used_at = ? WHERE {column} = ?", (format_time(utcnow()), value))
        return info

    def list(self) -> list[TokenInfo]:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, id")
        return [_info(row) for row in rows]

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke by id; takes effect everywhere within the lookup cache's lifetime."""
        rows = self._db.query("SELECT id FROM api_tokens WHERE id = ? AND revoked_at IS NULL", (token_id,))
        if not rows:
            raise NotFoundError(f"no active token with id {token_id!r} (see `chat-archive token list`)")
        self._db.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (format_time(utcnow()), token_id))
        self._cache.clear()
        return next(t for t in self.list() if t.id == token_id)

    def close(self) -> None:
        self._db.close()


_COLUMNS = "id, role, rooms, label, created_at, revoked_at, expires_at, last_used_at"


def _info(row) -> TokenInfo:
    token_id, role, rooms, label, created_at, revoked_at, expires_at, last_used_at = row
    return TokenInfo(
        token_id, Role(role), tuple(json.loads(rooms)), label, created_at, revoked_at, expires_at, last_used_at
    )


def open_token_store(store_url: str, *, cache_seconds: float = 5.0) -> TokenStore:
    """The token store inside the event store at ``store_url`` (created if needed)."""
    return TokenStore(open_database(store_url), cache_seconds=cache_seconds)


def open_database(store_url: str) -> _Database:
    """The event store's own database, for the API's small tables (tokens, signing keys)."""
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        prepare_sqlite_path(location.path, store_url)
        return _SQLite(str(location.path))
    ensure_postgres_schema(location)
    return _Postgres(location)


class _Database:
    def execute(self, sql: str, params: tuple = ()) -> None: ...
    def query(self, sql: str, params: tuple = ()) -> list[tuple]: ...
    def close(self) -> None: ...


class _SQLite(_Database):
    """A connection per call: token traffic is light and the cache absorbs repeats."""

    def __init__(self, path: str):
        self.path = path

    def _run(self, sql: str, params: tuple) -> list[tuple]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as conn, conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"token store {self.path}: {e}") from e

    def execute(self, sql: str, params: tuple = ()) -> None:
        self._run(sql, params)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._run(sql, params)

    def close(self) -> None:
        pass


class _Postgres(_Database):
    """One autocommit connection shared under a lock, reopened after a failure."""

    def __init__(self, location: StoreLocation):
        self.location = location
        self._lock = threading.Lock()
        self._conn = None

    def _connect(self):
        import psycopg

        return psycopg.connect(
            host=self.location.host,
            port=self.location.port,
            user=self.location.user,
            password=self.location.password or None,
            dbname=self.location.dbname,
            autocommit=True,
            connect_timeout=5,
            options=f"-c search_path={self.location.schema}",
        )

    def _run(self, sql: str, params: tuple) -> list[tuple]:
        import psycopg

        sql = sql.replace("?", "%s")
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                cursor = self._conn.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
            except psycopg.Error as e:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise StoreError(f"token store in PostgreSQL schema {self.location.schema!r}: {e}") from e

    def execute(self, sql: str, params: tuple = ()) -> None:
        self._run(sql, params)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._run(sql, params)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
