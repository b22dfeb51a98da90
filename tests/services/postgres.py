"""PostgreSQL on 127.0.0.1:5432 (started by .ci/run): a fresh schema per test (or per module/session)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@contextmanager
def fresh_schema_url() -> Iterator[str]:
    """A store URL naming a schema of its own, dropped on the way out."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        psycopg.connect(POSTGRES_DSN, autocommit=True).close()
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL is not running at 127.0.0.1:5432 (.ci/run starts it): {e}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/postgres?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres_url():
    """A store URL naming a schema of its own, dropped after the test."""
    with fresh_schema_url() as url:
        yield url
