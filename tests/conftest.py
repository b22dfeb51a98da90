"""Shared fixtures for the real services; each lives in tests/services/<name>.py."""

from hypothesis import HealthCheck, settings

from tests.services.postgres import postgres_url  # noqa: F401
from tests.services.store import event_store, store_url  # noqa: F401
from tests.services.browser import browser, screenshot_dir  # noqa: F401
from tests.services.prosody import people, prosody, xmpp_users  # noqa: F401

# Property tests are not timed: at the load of a parallel suite on two cores an example can take seconds
# (a deadline) and generation can look slow (the too_slow health check), failing a correct test.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")
