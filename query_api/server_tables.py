"""The API's own tables carried from one store to another (``chat-archive migrate``).

Tokens, signing keys and sign-outs live in the event store's database, not in its log, so
copying the log alone would leave every API client without its token, make every signed
cursor, ticket and session fail to verify, and let a signed-out session back in. Rows are
copied by id and a row the target holds already is left as it is, so a migration that is
run again (after an interruption, or for what came in meanwhile) copies only what is new.
"""

from __future__ import annotations

from .keys import KeyStore
from .sessions import EndedSessions
from .tokens import TokenStore, open_database

TABLES = {
    "api_tokens": ("id", "hash", "role", "rooms", "label", "created_at", "revoked_at", "expires_at", "last_used_at"),
    "signing_keys": ("id", "secret", "created_at"),
    "ended_sessions": ("id", "expires_at"),
}


def copy_server_tables(source_url: str, target_url: str) -> dict[str, int]:
    """Copy the rows of ``TABLES`` the target lacks; how many were copied, per table."""
    source, target = open_database(source_url), open_database(target_url)
    try:
        for database in (source, target):  # each makes its tables (and late columns) where missing
            TokenStore(database)
            KeyStore(database)
            EndedSessions(database)
        copied = {}
        for table, columns in TABLES.items():
            names = ", ".join(columns)
            marks = ", ".join("?" * len(columns))
            held = _count(target, table)
            for row in source.query(f"SELECT {names} FROM {table}"):
                target.execute(f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING", row)
            copied[table] = _count(target, table) - held
        return copied
    finally:
        source.close()
        target.close()


def _count(database, table: str) -> int:
    return database.query(f"SELECT count(*) FROM {table}")[0][0]
