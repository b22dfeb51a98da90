"""What the indexer's tests share: a configuration over the test's store and index, and a poll."""

from __future__ import annotations

import time

from archive.settings import StoreSettings
from chat_archive.config import Config
from projections.settings import IndexSettings


def config_of(store_url, index_root, commit_interval=0.25) -> Config:
    return Config(
        store=StoreSettings(url=store_url),
        index=IndexSettings(path=str(index_root / "index"), commit_interval=commit_interval, writer_heap_mb=20),
    )


def wait_for(predicate, timeout: float) -> float | None:
    """Poll every 5 ms; the seconds it took, or None if it never held."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        time.sleep(0.005)
    return None
