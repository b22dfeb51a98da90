"""Fixtures of the listener's integration tests (tests/ingest/helpers.py)."""

from tests.ingest.helpers import start_listen  # noqa: F401
