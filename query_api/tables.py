"""The API's own tables in the event store's database (tokens, signing keys, sign-outs), each defined once.

A table's definition makes it, gives a table made by an older release the columns added since, and
tells `chat-archive migrate` what to copy (``query_api.server_tables``): a column added here is
carried by migrate with no second list to remember.
"""

from __future__ import annotations

from dataclasses import dataclass

from archive.errors import StoreError


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    """(name, type and constraints) of every column, in order; the first is the primary key ``id``."""
    added: tuple[str, ...] = ()
    """Columns added after the table first shipped (nullable): added where an older table lacks them."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def create(self, database) -> None:
        """Make the table where missing, and add the columns an older one lacks."""
        definition = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        database.execute(f"CREATE TABLE IF NOT EXISTS {self.name} ({definition})")
        kinds = dict(self.columns)
        for column in self.added:
            try:
                database.query(f"SELECT {column} FROM {self.name} LIMIT 1")
            except StoreError:
                database.execute(f"ALTER TABLE {self.name} ADD COLUMN {column} {kinds[column]}")
