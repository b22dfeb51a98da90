"""Settings of the archive core: where the event store lives."""

import msgspec


class StoreSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[store]`"""

    url: str = "sqlite:///data/events.sqlite"
    """Event store: `sqlite:///relative/path`, `sqlite:////absolute/path` or `postgresql://user:pw@host:port/db?schema=s`."""
    sqlite_synchronous: str = "normal"
    """SQLite only: `normal` (fast; a power loss may undo the last commits, which MAM backfill restores) or `full`."""
