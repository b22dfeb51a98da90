"""Settings of the archive core: where the event store lives."""

from typing import Annotated

import msgspec


class StoreSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[store]`"""

    url: str = "sqlite:///data/events.sqlite"
    """Event store: `sqlite:///relative/path`, `sqlite:////absolute/path` or `postgresql://user:pw@host:port/db?schema=s`."""
    sqlite_synchronous: str = "normal"
    """SQLite only: `normal` (fast; a power loss may undo the last commits, which MAM backfill restores) or `full`."""
    checkpoint_interval: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    """Seconds between checkpoints of every room's hash-chain head in the log (`up` and `listen`)."""
