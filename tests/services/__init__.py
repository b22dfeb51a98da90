"""Real services started for tests (one module each); fixtures are re-exported by tests/conftest.py."""
