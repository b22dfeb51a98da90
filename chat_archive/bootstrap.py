"""Composition root: builds the parts a process needs from a Config."""

from __future__ import annotations

import threading

from archive.application import open_event_store
from archive.store import EventStore
from query_api import create_app
from query_api.server import ApiServer, start_server
from query_api.tokens import TokenStore, open_token_store

from .config import Config


def open_store(config: Config) -> EventStore:
    return open_event_store(config.store.url, sqlite_synchronous=config.store.sqlite_synchronous)


# -- query API ----------------------------------------------------------------


def open_tokens(config: Config) -> TokenStore:
    """The API token store, inside the event store's database."""
    return open_token_store(config.store.url, cache_seconds=config.api.token_cache_seconds)


def build_api(config: Config, store: EventStore, views=None, search=None, stop=None):
    """The Flask app over the parts this process already holds."""
    return create_app(config, store=store, views=views, search=search, tokens=open_tokens(config), stopping=stop)


def start_api(
    config: Config, store: EventStore, views=None, search=None, stop: threading.Event | None = None, *, host=None, port=None
) -> ApiServer:
    """Serve the API in a thread of this process (as `chat-archive up` does) until ``stop`` is set.

    Returns the server handle: ``.url``, ``.stop()``, ``.join()``. ``stop`` is a
    ``threading.Event`` shared with the caller (one is made if not given); setting it
    ends open follow streams and the server.
    """
    stop = stop if stop is not None else threading.Event()
    app = build_api(config, store, views, search, stop)
    return start_server(
        app,
        host if host is not None else config.api.host,
        port if port is not None else config.api.port,
        threads=config.api.threads,
        stop=stop,
    )
