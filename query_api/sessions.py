"""Sign-in sessions ended by signing out, kept where every API process of the archive sees them.

A session cookie is a signed value (``query_api.web.auth``) that any process
verifies by itself; what the value cannot say is that its user signed out. So
sign-out records the session's id in the event store's own database (table
``ended_sessions``, beside ``api_tokens`` and ``signing_keys``: SQLite file or
PostgreSQL schema, shared by every worker and host), and a session whose id is
there is refused, whoever presents the cookie.

A row is kept only until the session would have expired anyway (each sign-out
deletes the rows past that), so the table holds at most one session lifetime's
sign-outs.

Whether a session has ended is cached per process for ``[api]
token_cache_seconds``, as a token lookup is (the same mechanism and bound): the
process that signs a session out refuses it at once, every other one within
that long.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .cache import TtlCache
from .tables import Table
from .tokens import _Database, open_database

TABLE = Table("ended_sessions", (("id", "TEXT PRIMARY KEY"), ("expires_at", "BIGINT NOT NULL")))


class EndedSessions:
    """The ids of sessions signed out before they expired."""

    def __init__(self, database: _Database, *, cache_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._db = database
        self._cache: TtlCache[bool] = TtlCache(cache_seconds, clock=clock)
        TABLE.create(self._db)
        self._db.close()  # reopened at the first sign-out or check: a process that serves no pages holds no connection

    def end(self, session_id: str, *, until: float) -> None:
        """Refuse ``session_id`` from now on; ``until``: (Unix time) when it would expire by itself."""
        self._db.execute("DELETE FROM ended_sessions WHERE expires_at <= ?", (int(time.time()),))
        self._db.execute(
            "INSERT INTO ended_sessions (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            (session_id, math.ceil(until)),
        )
        self._cache.put(session_id, True)

    def ended(self, session_id: str) -> bool:
        return self._cache.get_or_compute(
            session_id, lambda: bool(self._db.query("SELECT 1 FROM ended_sessions WHERE id = ?", (session_id,)))
        )

    def close(self) -> None:
        self._db.close()


def open_ended_sessions(store_url: str, *, cache_seconds: float = 5.0) -> EndedSessions:
    """The ended sessions of the archive at ``store_url`` (their table made if needed)."""
    return EndedSessions(open_database(store_url), cache_seconds=cache_seconds)
