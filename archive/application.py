"""The eventsourcing Application that owns the archive's persistence, and store URLs.

``sqlite:///path/to/events.sqlite`` (the embedded default) or
``postgresql://user:password@host:port/dbname?schema=name`` (scale-out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.application import Application
from eventsourcing.persistence import PersistenceError

from .errors import ConfigError, StoreError
from .store import EventStore

# The schema is named in SQL quoted by some statements and bare by others (a search_path, eventsourcing's
# type look-ups), which PostgreSQL folds to lower case: only a lower-case plain identifier that it keeps whole
# (63 bytes) names the same schema both ways; anything else is read as SQL or names another schema.
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ArchiveApplication(Application):
    """Holds the infrastructure (factory, recorder) built from the environment."""

    name = "archive_store"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URL."""

    kind: str  # "sqlite" | "postgresql"
    path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    dbname: str = "postgres"
    schema: str = "public"

    @classmethod
    def parse(cls, url: str) -> StoreLocation:
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            raw = unquote(parsed.netloc + parsed.path)
            # As in SQLAlchemy: sqlite:///rel/path is relative, sqlite:////abs/path absolute.
            path = raw[1:] if raw.startswith("/") else raw
            if not path:
                raise ConfigError(f"store url {url!r} names no file: use sqlite:///path/to/events.sqlite")
            return cls(kind="sqlite", path=Path(path))
        if parsed.scheme in ("postgresql", "postgres"):
            query = parse_qs(parsed.query)
            try:
                port = parsed.port or 5432
            except ValueError as e:
                raise ConfigError(f"store url {url!r} has a bad port") from e
            schema = query.get("schema", ["public"])[0]
            if not _SCHEMA.fullmatch(schema):
                raise ConfigError(f"store url {url!r}: schema {schema!r} must be lower-case letters, digits and _ (at most 63)")
            return cls(
                kind="postgresql",
                host=parsed.hostname or "127.0.0.1",
                port=port,
                user=unquote(parsed.username or "postgres"),
                password=unquote(parsed.password or ""),
                dbname=(parsed.path.lstrip("/") or "postgres"),
                schema=schema,
            )
        raise ConfigError(f"store url {url!r}: scheme must be sqlite:/// or postgresql://")

    def environment(self, sqlite_synchronous: str = "normal") -> dict[str, str]:
        """The eventsourcing environment variables for this location."""
        if self.kind == "sqlite":
            return {
                "SQLITE_SYNCHRONOUS": sqlite_synchronous,
                "PERSISTENCE_MODULE": "archive.sqlite_recorder:ArchiveSQLiteFactory",
                "SQLITE_DBNAME": str(self.path),
                "SQLITE_LOCK_TIMEOUT": "30",
                "ORIGINATOR_ID_TYPE": "text",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_SCHEMA": self.schema,
            # One connection kept open per pool, more opened under load: an archive runs many processes
            # (API workers on several hosts, runners, the listener), and PostgreSQL allows ~100 clients.
            "POSTGRES_POOL_SIZE": "1",
            "POSTGRES_MAX_OVERFLOW": "15",
            # How long an operation waits for a connection (also the pool's wait): while PostgreSQL
            # restarts, the callers' retries see an error within seconds rather than after 30 s.
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "ORIGINATOR_ID_TYPE": "text",
            "APPLICATION_RECORDER_TOPIC": "archive.postgres_recorder:PostgresArchiveRecorder",
        }


def open_event_store(url: str, *, sqlite_synchronous: str = "normal", chained: bool = True) -> EventStore:
    """Open (creating tables if needed) the event store at ``url``.

    ``chained=False`` appends without hash-chain links: only the benchmark's baseline uses it."""
    location = StoreLocation.parse(url)
    if location.kind == "sqlite":
        prepare_sqlite_path(location.path, url)
    else:
        ensure_postgres_schema(location)
    try:
        app = ArchiveApplication(env=location.environment(sqlite_synchronous))
    except (PersistenceError, OSError) as e:
        raise StoreError(f"cannot open event store {url!r}: {e}") from e
    return EventStore(app.recorder, close=app.close, chained=chained)


def prepare_sqlite_path(path, url: str) -> None:
    """The directory of a SQLite store, made if needed; a path that cannot hold one is a
    configuration error, said in one line."""
    if path.is_dir():
        raise ConfigError(f"store url {url!r}: {path} is a directory, not a SQLite file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"store url {url!r}: cannot create the directory {path.parent}: {e.strerror}") from e


def ensure_postgres_schema(location: StoreLocation) -> None:
    """eventsourcing creates tables, not schemas: create the schema first."""
    import psycopg

    try:
        with psycopg.connect(
            host=location.host,
            port=location.port,
            user=location.user,
            password=location.password or None,
            dbname=location.dbname,
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            # Looked up first (no DDL, nor the right to create one, once it exists); processes making it at once
            # race in IF NOT EXISTS (a duplicate key in pg_namespace): the loser finds it made.
            if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname=%s", (location.schema,)).fetchone() is None:
                try:
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{location.schema}"')
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema):
                    pass
    except psycopg.Error as e:
        raise StoreError(f"cannot reach PostgreSQL at {location.host}:{location.port}: {e}") from e
