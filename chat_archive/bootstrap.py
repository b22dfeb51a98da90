"""Composition root: builds the parts a process needs from a Config."""

from __future__ import annotations

from archive.application import open_event_store
from archive.store import EventStore

from .config import Config


def open_store(config: Config) -> EventStore:
    return open_event_store(config.store.url, sqlite_synchronous=config.store.sqlite_synchronous)
