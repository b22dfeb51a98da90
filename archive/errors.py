"""The one root of every error chat-archive raises on purpose.

Library and driver errors are translated into these at the boundary where they
occur (``raise X(...) from e``); only ``query_api`` maps them to HTTP statuses
and only the CLI maps them to exit codes.
"""


class ChatArchiveError(Exception):
    """Root of all chat-archive errors."""


class ConfigError(ChatArchiveError):
    """A configuration file, environment override or setting is invalid."""


class EventDecodeError(ChatArchiveError):
    """A stored or submitted payload is not a valid archive event."""


class StoreError(ChatArchiveError):
    """The event store could not be opened, read or written."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now or is busy (PostgreSQL restarting, SQLite locked, disk full):
    the same call may succeed later, so long-running parts retry it with back-off."""


class Fenced(StoreError):
    """Nothing may be appended now: the lease the append is made under is not its holder's (``archive.lease``)."""


class ConcurrencyError(StoreError):
    """Another writer kept winning the race for a room's next version."""


class NotFoundError(ChatArchiveError):
    """A room, event or other named thing does not exist."""


class InvalidQueryError(ChatArchiveError):
    """A query, parameter or argument is malformed; ``position`` points at the fault."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position
