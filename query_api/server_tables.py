"""The API's own tables carried from one store to another (``chat-archive migrate``).

Tokens, signing keys and sign-outs live in the event store's database, not in its log, so
copying the log alone would leave every API client without its token, make every signed
cursor, ticket and session fail to verify, and let a signed-out session back in. Rows are
copied by id and a row the target holds already is left as it is, so a migration that is
run again (after an interruption, or for what came in meanwhile) copies only what is new.
"""

from __future__ import annotations

from . import keys, sessions, tokens
from .tokens import open_database

TABLES = (tokens.TABLE, keys.TABLE, sessions.TABLE)


def copy_server_tables(source_url: str, target_url: str) -> dict[str, int]:
    """Copy the rows of ``TABLES`` the target lacks, every column; how many were copied, per table."""
    source, target = open_database(source_url), open_database(target_url)
    try:
        copied = {}
        for table in TABLES:
            table.create(source)  # each made where missing, with the columns an older one lacks
            table.create(target)
            names = ", ".join(table.column_names)
            marks = ", ".join("?" * len(table.columns))
            held = _count(target, table.name)
            for row in source.query(f"SELECT {names} FROM {table.name}"):
                target.execute(f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING", row)
            copied[table.name] = _count(target, table.name) - held
        return copied
    finally:
        source.close()
        target.close()


def _count(database, table: str) -> int:
    return database.query(f"SELECT count(*) FROM {table}")[0][0]
