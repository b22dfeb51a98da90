"""Driver and library errors as the archive's, at the store's boundary (the event store's and the views')."""

from __future__ import annotations

import sqlite3

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from psycopg_pool import PoolTimeout

from .errors import StoreError, StoreUnavailable


def store_error(message: str, error: Exception) -> StoreError:
    """A driver or library error as the archive's: ``StoreUnavailable`` where trying again may succeed
    (the connection, a lock, a full disk), a plain ``StoreError`` where it cannot (bad SQL, bad data)."""
    cause = error.__cause__ if isinstance(error, PersistenceError) and error.__cause__ is not None else error
    transient = isinstance(error, (OperationalError, InterfaceError)) or isinstance(
        cause, (sqlite3.OperationalError, psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
    )
    return (StoreUnavailable if transient else StoreError)(f"{message}: {error}")


def connection_lost(error: Exception) -> bool:
    """PostgreSQL unreachable (no connection, or it broke), not a conflict with another writer:
    the server's own errors carry an SQLSTATE, the client's connection errors do not (a pipeline
    aborted by an earlier statement's conflict is the conflict, not the connection)."""
    cause = error.__cause__
    if isinstance(cause, PoolTimeout):
        return True
    return (
        isinstance(cause, psycopg.OperationalError)
        and not isinstance(cause, psycopg.errors.PipelineAborted)
        and cause.sqlstate is None
    )
