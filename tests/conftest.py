"""Shared fixtures for the real services; each lives in tests/services/<name>.py."""

from tests.services.postgres import postgres_url  # noqa: F401
from tests.services.store import event_store, store_url  # noqa: F401
from tests.services.browser import browser, screenshot_dir  # noqa: F401
from tests.services.prosody import people, prosody, xmpp_users  # noqa: F401
