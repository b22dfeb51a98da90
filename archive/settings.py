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


# A purge's cutoff is now minus the period: a period past the calendar (a billion days) overflowed it, so a
# period is at most a century, like the other day counts of the settings.
RetentionDays = Annotated[int, msgspec.Meta(ge=0, le=36500)]


class RetentionSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[retention]`"""

    default_days: RetentionDays = 0
    """Days an event is kept after it occurred, unless a legal hold covers it; 0 keeps everything forever (at most 36500)."""
    rooms: dict[str, RetentionDays] = {}
    """Days per room (a JID or shell glob, as `[retention.rooms]` table `"lobby@conference.example.org" = 30`), overriding `default_days`; 0 keeps that room forever (at most 36500)."""
    purge_interval: Annotated[float, msgspec.Meta(gt=0)] = 86400.0
    """Seconds between the purges `up` runs when a retention period is set (and once at start; with none set, only until an interrupted purge's rebuild that was owed at start is done; a turn another purge or a rebuild of the views held the purge lease from is tried again every 5 s)."""
