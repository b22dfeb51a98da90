"""Views as an older chat-archive left them: a generation recorded as built by older rules, or by none; rows as older
rules wrote them; a transcript view of an older table layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.viewdb import PREFIX
from projections.views import Views


def as_built_by_rules(views: Views, name: str, rules: int | None) -> None:
    """Record the live generation of ``name`` as built by ``rules`` (None: as made before versions were recorded)."""
    recorder = views.recorder
    generation = recorder.generations(name)[0]
    table = PREFIX + "generation_rules"
    if recorder.placeholder != "?":
        table = f'"{recorder.datastore.schema}".{table}'
    with recorder.datastore.transaction(commit=True) as c:
        c.execute(f"DELETE FROM {table} WHERE projection=? AND generation=?".replace("?", recorder.placeholder),
                  (name, generation))
        if rules is not None:
            c.execute(f"INSERT INTO {table} (projection, generation, rules) VALUES (?,?,?)"
                      .replace("?", recorder.placeholder), (name, generation, rules))


def written_as_before(views: Views, name: str, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``statement`` (``{table}`` names the live generation's, as ``ViewRecorderMixin.sql`` reads it) once for each
    of ``rows`` in one transaction: rows made as older rules made them."""
    recorder = views.recorder
    generation = recorder.generations(name)[0]
    with recorder.datastore.transaction(commit=True) as c:
        c.executemany(recorder.sql(statement, name, generation), rows)


def as_made_before_late_lines(views: Views) -> int:
    """The live transcript generation as a chat-archive before late lines (3a04ef2) left it: no ``late`` column, the
    widget's feed indexed by ``lines_rev`` (room, rev) over every line, refs of (bucket, ref, id), no version of its
    rules recorded; its number."""
    recorder = views.recorder
    generation = recorder.generations("transcripts")[0]
    name = recorder.table_name("transcripts", generation, "refs")
    # One at a time: the statements of one call may run at once (each index in a backend of its own on PostgreSQL).
    # The index before the column: SQLite refuses to drop a column an index names. {}: qualified, as PostgreSQL
    # drops it.
    for statement in ("CREATE TABLE {refs_bucketed} (bucket INTEGER NOT NULL, ref INTEGER NOT NULL, "
                      "id INTEGER NOT NULL, PRIMARY KEY (bucket, ref, id)) WITHOUT ROWID",
                      "INSERT INTO {refs_bucketed} (bucket, ref, id) SELECT ref_key >> 32, ref_key & 4294967295, id "
                      "FROM {refs}",
                      "DROP TABLE {refs}", f'ALTER TABLE {{refs_bucketed}} RENAME TO "{name}"',
                      "DROP INDEX IF EXISTS {lines_changed}", "ALTER TABLE {lines} DROP COLUMN late",
                      "CREATE INDEX [lines_rev] ON {lines} (room, rev)"):
        recorder.add_indexes("transcripts", generation, [statement])
    as_built_by_rules(views, "transcripts", None)
    return generation
