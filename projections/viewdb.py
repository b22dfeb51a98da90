"""Where the views live: eventsourcing tracking recorders that also own the view tables.

A view database is SQLite (``views.sqlite`` beside a SQLite event store, by
default) or PostgreSQL (the store's own schema, every table prefixed ``view_``).
``[projections] url`` may name another place, in the same URL forms as the store.

Generations: each projection's tables carry a generation number
(``view_transcript_lines_g3``). ``view_generations`` records, per projection, the
``live`` generation (the one queries read) and the ``building`` one (a rebuild in
progress). The tracking position of a generation is eventsourcing's tracking row
named ``<projection>#g<generation>``. ``view_generation_rules`` records the version of the rules
each generation was built by (``TableProjection.rules``), written with its tables: a live generation of older
rules is one a start rebuilds from the log (``TableProjection.outdated``). A rebuild fills a new generation from
position 0 and then, in one transaction, makes it live and drops the old one;
a running projection notices at its next commit (``GenerationChanged``) and
starts over from the new generation's position, so nothing is applied twice.

SQL is written once with ``?`` placeholders and ``{name}`` table references;
``ViewRecorderMixin.sql`` turns it into the backend's form. The backends themselves, and
opening one from a URL, are ``projections.viewdb_backends``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError, Tracking

from archive.errors import ChatArchiveError, StoreUnavailable
from archive.store_errors import store_error

from .columns import Statements

PREFIX = "view_"
RULES = PREFIX + "generation_rules"  # (projection, generation) -> the rules it was built by


TABLE_REF = re.compile(r"\{(\w+)\}")
_INDEX_REF = re.compile(r"\[(\w+)\]")


def named_table(projection: str, statement: str) -> str:
    """The table a statement of ``add_indexes`` is about: the first it names (``{lines}``)."""
    found = TABLE_REF.search(statement)
    if found is None:
        raise ChatArchiveError(f"an index statement of projection {projection} names no table of it: {statement!r}")
    return found[1]


class GenerationChanged(ChatArchiveError):
    """A rebuild swapped in (or restarted) a projection's tables under a running writer."""


class ViewRecorderMixin:
    """What both backends share: generations, table naming, batched writes, reads."""

    placeholder = "?"
    row_lock = ""  # a commit's read of its generation must wait for a swap in progress
    # A rebuild's query indexes made before its writer process fills the tables (``TableProjection.write_in_background``),
    # not after: see the SQLite backend.
    index_while_building = False
    # A build's lookup keys made at its end where the projection can (``TableProjection.deferred_ddl``): see PostgreSQL's.
    keys_after_building = False
    # Rows may come from a JSON array in one statement (SQLite's ``json_each``): see ``transcripts.refs.created_ref_rows``.
    json_each = False
    url = ""  # where it was opened from (``viewdb_backends.open_view_recorder``): a rebuild's writer opens it again

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._live: dict[str, int] = {}
        """The live generation of each projection as this recorder last read it (``read``)."""

    def _qualify(self, table: str) -> str:
        return table

    def table_name(self, projection: str, generation: int, table: str) -> str:
        return f"{PREFIX}{projection}_{table}_g{generation}"

    def sql(self, statement: str, projection: str, generation: int) -> str:
        """``{lines}`` -> the generation's qualified table, ``[lines_ts]`` -> an index name
        (unqualified: PostgreSQL creates it in the table's schema), ``?`` -> the backend's placeholder."""
        text = TABLE_REF.sub(
            lambda m: self._qualify(self.table_name(projection, generation, m.group(1))), statement
        )
        text = _INDEX_REF.sub(lambda m: self.table_name(projection, generation, m.group(1)), text)
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def ddl_types(self, statement: str) -> str:
        """DDL is written with SQLite's types."""
        return statement

    @staticmethod
    def tracking_name(projection: str, generation: int) -> str:
        return f"{projection}#g{generation}"

    # -- generations ---------------------------------------------------------

    def generations(self, projection: str) -> tuple[int, int | None]:
        """(live, building) generations of ``projection``; live is 0 before the first one exists."""
        rows = self.read_rows(
            f"SELECT live, building FROM {self._qualify(PREFIX + 'generations')} WHERE projection=?",
            (projection,),
        )
        if not rows:
            return 0, None
        return rows[0]["live"], rows[0]["building"]

    def live_rules(self, projection: str) -> tuple[int, int | None]:
        """The live generation of ``projection`` (0 before the first one exists) and the version of the rules it was
        built by (None: not recorded, made before versions were), in one read."""
        rows = self.read_rows(
            f"SELECT g.live, r.rules FROM {self._qualify(PREFIX + 'generations')} g LEFT JOIN {self._qualify(RULES)} r "
            "ON r.projection=g.projection AND r.generation=g.live WHERE g.projection=?", (projection,),
        )  # fmt: skip
        return (rows[0]["live"], rows[0]["rules"]) if rows else (0, None)

    def record_rules(self, projection: str, generation: int, rules: int) -> None:
        """Record ``generation`` as built by version ``rules`` of the projection's rules, unless a version is."""
        with self._write() as c:
            c.execute(self._g(f"INSERT INTO {self._qualify(RULES)} (projection, generation, rules) VALUES (?,?,?) "
                              "ON CONFLICT (projection, generation) DO NOTHING"), (projection, generation, rules))

    def position(self, projection: str, generation: int) -> int:
        try:
            return self.max_tracking_id(self.tracking_name(projection, generation)) or 0
        except PersistenceError as e:
            raise store_error(f"cannot read the position of projection {projection}", e) from e

    def add_indexes(self, projection: str, generation: int, ddl: Iterable[str]) -> None:
        """Indexes a build does without until it is done (created in one go, they cost less). One transaction
        each: on SQLite one for all held the file's write lock, and stalled the live projection, for the
        whole build (seconds at 1M events)."""
        ddl = list(ddl)
        for statement in ddl:  # checked before any runs: each names its table (PostgreSQL's analyses it)
            named_table(projection, statement)
        try:
            for statement in ddl:
                with self._write() as c:
                    c.execute(self.sql(self.ddl_types(statement), projection, generation))
        except (PersistenceError, sqlite3.Error, psycopg.Error) as e:
            if _is_missing_table(e):  # another rebuild of it began, and dropped this unfinished one
                raise GenerationChanged(f"{projection} generation {generation} was replaced by another rebuild") from e
            raise store_error(f"cannot index projection {projection}", e) from e

    def create_generation(self, projection: str, ddl: Iterable[str], *, live: bool, rules: int) -> int:
        """Create a new generation's tables, built by version ``rules`` of the projection's rules; as live (first
        use) or as the one being built.

        Starting a build drops any earlier, unfinished build of the same projection.
        """
        with self._write() as c:
            self._lock_generations(c)
            c.execute(self._g("SELECT live, building FROM {g} WHERE projection=?"), (projection,))
            row = c.fetchone()
            live_gen, building = (row["live"], row["building"]) if row else (0, None)
            if live and live_gen:
                return live_gen  # somebody else created it first
            if building is not None:
                self._drop(c, projection, building)
            new = max(live_gen, building or 0) + 1
            for statement in ddl:
                c.execute(self.sql(self.ddl_types(statement), projection, new))
            # Replacing a row left by a generation of this number that an older chat-archive (run in between)
            # dropped without it.
            c.execute(self._g(f"INSERT INTO {self._qualify(RULES)} (projection, generation, rules) VALUES (?,?,?) "
                              "ON CONFLICT (projection, generation) DO UPDATE SET rules=excluded.rules"),
                      (projection, new, rules))
            if row is None:
                c.execute(
                    self._g("INSERT INTO {g} (projection, live, building) VALUES (?,?,?)"),
                    (projection, new if live else 0, None if live else new),
                )
            elif live:
                c.execute(self._g("UPDATE {g} SET live=? WHERE projection=?"), (new, projection))
            else:
                c.execute(self._g("UPDATE {g} SET building=? WHERE projection=?"), (new, projection))
        return new

    def swap_in(self, projection: str, generation: int) -> None:
        """Make the built ``generation`` live and drop the previous one, atomically."""
        with self._write() as c:
            self._lock_generations(c)
            c.execute(self._g("SELECT live, building FROM {g} WHERE projection=?"), (projection,))
            row = c.fetchone()
            if row is None or row["building"] != generation:
                raise GenerationChanged(f"another rebuild of {projection} replaced generation {generation}")
            if row["live"]:
                self._drop(c, projection, row["live"])
            c.execute(
                self._g("UPDATE {g} SET live=?, building=NULL WHERE projection=?"), (generation, projection)
            )

    def drop_building(self, projection: str, generation: int) -> None:
        """Abandon an unfinished build."""
        with self._write() as c:
            self._lock_generations(c)
            c.execute(self._g("SELECT building FROM {g} WHERE projection=?"), (projection,))
            row = c.fetchone()
            if row is not None and row["building"] == generation:
                self._drop(c, projection, generation)
                c.execute(self._g("UPDATE {g} SET building=NULL WHERE projection=?"), (projection,))

    def _drop(self, c: Any, projection: str, generation: int) -> None:
        for table in self._tables_of(c, projection, generation):
            c.execute(f"DROP TABLE IF EXISTS {self._qualify(table)}")
        c.execute(
            self._g(f"DELETE FROM {self._qualify(self.tracking_table)} WHERE application_name=?"),
            (self.tracking_name(projection, generation),),
        )
        c.execute(self._g(f"DELETE FROM {self._qualify(RULES)} WHERE projection=? AND generation=?"),
                  (projection, generation))

    def _g(self, statement: str) -> str:
        text = statement.replace("{g}", self._qualify(PREFIX + "generations"))
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    # -- writes and reads ----------------------------------------------------

    def commit_batch(
        self, projection: str, generation: int, position: int, statements: Statements, *, building: bool,
        after: int | None = None,
    ) -> None:
        """Write ``statements`` and the generation's position in one transaction.

        Raises GenerationChanged (and writes nothing) if ``generation`` is no
        longer the live one (or, for a build, the one being built), or if it no longer holds position
        ``after``, which the changes follow (another runner committed since this one read it).
        """
        name = self.tracking_name(projection, generation)
        try:
            with self._write() as c:
                if after is not None and (held := self._held_position(c, projection, name)) != after:
                    raise GenerationChanged(
                        f"{projection} generation {generation} holds position {held}, not {after}: "
                        "another runner committed it"
                    )
                self._insert_tracking(c, Tracking(name, position))
                c.execute(
                    self._g("SELECT live, building FROM {g} WHERE projection=?" + self.row_lock), (projection,)
                )
                row = c.fetchone()
                current = row and (row["building"] if building else row["live"])
                if current != generation:
                    raise GenerationChanged(f"{projection} generation {generation} is no longer current")
                for statement, rows in statements:
                    if rows:
                        self._write_rows(c, self.sql(statement, projection, generation), rows)
        except (PersistenceError, sqlite3.Error, psycopg.Error) as e:
            raise store_error(f"cannot commit projection {projection}", e) from e

    def _write_rows(self, c: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        c.executemany(statement, rows)

    def _held_position(self, c: Any, projection: str, name: str) -> int:
        """The position tracked as ``name`` (of ``projection``), which no other commit changes before this
        transaction ends."""
        raise NotImplementedError

    def read(self, projection: str, work: Callable[[Callable[..., list], int], Any]) -> Any:
        """Run ``work(query, generation)`` on the live generation.

        ``query(statement, params)`` returns the rows (mappings by column name).
        The live generation is remembered from the last read: a swap drops the tables of the
        generation it replaces in the transaction that makes the new one live, so a read of a
        replaced generation fails on a missing table, in any process, and only then is the live
        one looked up again (a look-up costs a round trip to PostgreSQL on every request).
        Retries with a fresh look-up if a rebuild swapped the tables in between.
        """
        remembered = self._live.get(projection)
        attempts: tuple[int | None, ...] = (remembered, None, None) if remembered else (None, None)
        for attempt, known in enumerate(attempts, 1):
            try:
                with self._read() as c:
                    generation = known or self._live_generation(c, projection)

                    def query(statement: str, params: Sequence[Any] = ()) -> list:
                        c.execute(self.sql(statement, projection, generation), params)
                        return c.fetchall()

                    result = work(query, generation)
                if generation:
                    self._live[projection] = generation
                return result
            except (PersistenceError, sqlite3.Error, psycopg.Error) as e:
                if attempt == len(attempts) or not _is_missing_table(e):
                    raise store_error(f"cannot read view {projection}", e) from e
        raise AssertionError("unreachable")

    def _live_generation(self, c: Any, projection: str) -> int:
        c.execute(self._g("SELECT live FROM {g} WHERE projection=?"), (projection,))
        row = c.fetchone()
        return row["live"] if row else 0

    def read_rows(self, statement: str, params: Sequence[Any] = ()) -> list:
        text = statement if self.placeholder == "?" else statement.replace("?", self.placeholder)
        try:
            with self._read() as c:
                c.execute(text, params)
                return c.fetchall()
        except (PersistenceError, sqlite3.Error, psycopg.Error) as e:
            if _is_missing_table(e):  # a rebuild swapped these tables out: read the live ones (SQLite says so too)
                raise StoreUnavailable(f"cannot read views: {e}") from e
            raise store_error("cannot read views", e) from e

    @contextmanager
    def _write(self):
        with self.datastore.transaction(commit=True) as c:
            yield c

    @contextmanager
    def _read(self):
        with self.datastore.transaction(commit=False) as c:
            yield c


def _is_missing_table(error: BaseException) -> bool:
    text = str(error).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)
