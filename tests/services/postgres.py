"""PostgreSQL on 127.0.0.1:5432 (started by .ci/run): a fresh schema per test."""

from __future__ import annotations

import uuid

import psycopg
import pytest

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@pytest.fixture
def postgres_url():
    """A store URL naming a schema of its own, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        psycopg.connect(POSTGRES_DSN, autocommit=True).close()
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL is not running at 127.0.0.1:5432 (.ci/run starts it): {e}")
    yield f"postgresql://postgres@127.0.0.1:5432/postgres?schema={schema}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
