"""Views as an older chat-archive left them: a generation recorded as built by older rules, or by none."""

from __future__ import annotations

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
