"""The search index as a projection of the event log (the follower's ``Projection``).

Messages are added in batches; a commit writes the batch together with a
``meta`` document holding the log position reached, so a crash at any point
resumes exactly after the last commit. Corrections and retractions look their
message up among the documents of the uncommitted batch first, then in the
committed index, and replace it (delete by key, add again: tantivy applies a
delete only to documents added before it, so the new version survives).

One writer per index directory, across processes: the writer is opened on the
first ``apply``/``commit``, so a process that only starts a rebuild or reads the
position never competes with the running indexer for the lock.
"""

from __future__ import annotations

import shutil
from functools import partial
from collections.abc import Sequence
from pathlib import Path

import tantivy

from archive.errors import StoreError
from archive.events import MessageCorrected, MessagePosted, MessageRetracted, Recorded

from . import documents as docs
from .. import messages
from ..follower import ProjectionReset
from ..lines import Line, ids
from .schema import FLAG_SET, SCHEMA, SCHEMA_VERSION, ref_hash
from .storage import IndexLocation

DEFAULT_HEAP_MB = 256
MAX_CANDIDATES = 8  # messages sharing a ref hash looked at (collisions are ~never)
_MESSAGE_EVENTS = (MessagePosted, MessageCorrected, MessageRetracted)


def open_tantivy(directory: Path) -> tantivy.Index:
    """Open (or create, when empty) a generation's index and check its schema version."""
    try:
        index = tantivy.Index(SCHEMA, path=str(directory), reuse=True)
    except ValueError as e:
        raise StoreError(
            f"search index {directory} cannot be opened ({e}); rebuild it: chat-archive rebuild search"
        ) from e
    index.config_reader("manual")
    return index


def read_meta(searcher: tantivy.Searcher) -> tuple[int, int]:
    """(position, schema version) committed in an index, (0, SCHEMA_VERSION) if empty."""
    hits = searcher.search(tantivy.Query.term_query(SCHEMA, "meta", FLAG_SET), 1).hits
    if not hits:
        return 0, SCHEMA_VERSION
    stored = searcher.doc(hits[0][1])
    return stored.get_first("position"), stored.get_first("version")


class SearchIndexProjection:
    """Keeps one index generation up to date with the log."""

    name = "search"

    def __init__(self, location: IndexLocation, directory: Path | None = None, *, heap_mb: int = DEFAULT_HEAP_MB):
        self.location = location
        # A projection on the live generation follows swaps; one building a fresh generation does not.
        self.live = directory is None
        self.heap_mb = heap_mb
        self._writer: tantivy.IndexWriter | None = None
        self._open(directory or location.current_or_new())

    def _open(self, directory: Path) -> None:
        """Open a generation. One this program cannot use (another schema) is remembered,
        not raised: it can still be rebuilt, and only using it raises."""
        self.directory = directory
        self._position, self._unusable = 0, None
        self._book = messages.MemoryBook()
        try:
            self._index = open_tantivy(self.directory)
            self._searcher = self._index.searcher()
            self._position, version = read_meta(self._searcher)
            if version != SCHEMA_VERSION:
                raise StoreError(
                    f"search index {self.directory} has schema version {version}, this program "
                    f"{SCHEMA_VERSION}: rebuild it with chat-archive rebuild search"
                )
        except StoreError as e:
            self._unusable = e
            return
        self._remember_awaiting()

    # -- the Projection protocol -------------------------------------------------

    def position(self) -> int:
        self._usable()
        return self._position

    def apply(self, records: Sequence[Recorded]) -> None:
        self._usable()
        writer = self._open_writer()
        book = self._book
        try:
            for record in records:
                event = record.event
                if type(event) not in _MESSAGE_EVENTS:
                    continue
                changes = messages.step(record.position, event, book)
                for line_id in changes.dropped:
                    writer.delete_documents_by_query(_key_query(line_id))
                for line in changes.put:
                    if line.id != record.position or line.id in book.lines:
                        writer.delete_documents_by_query(_key_query(line.id))
                    writer.add_document(docs.to_tantivy(line))
                book.apply(changes)
        except ValueError as e:
            raise StoreError(f"search index {self.directory}: cannot add documents: {e}") from e

    def commit(self, position: int) -> None:
        if self.stale():
            self.reopen()
            raise ProjectionReset(
                f"search index replaced by a rebuild; resuming from position {self._position}"
            )
        self._usable()
        writer = self._open_writer()
        try:
            writer.delete_documents_by_query(tantivy.Query.term_query(SCHEMA, "meta", FLAG_SET))
            writer.add_document(docs.meta_document(position, SCHEMA_VERSION))
            writer.commit()
            self._index.reload()
        except ValueError as e:
            raise StoreError(f"search index {self.directory}: commit failed: {e}") from e
        self._searcher = self._index.searcher()
        self._new_book([line for line in self._book.lines.values() if line.awaiting])  # all committed now
        self._position = position

    # -- rebuild -------------------------------------------------------------------

    def begin_rebuild(self) -> SearchIndexProjection:
        """A projection writing a fresh, empty generation (position 0), not yet live."""
        return SearchIndexProjection(self.location, self.location.new_generation(), heap_mb=self.heap_mb)

    def finish_rebuild(self, fresh: SearchIndexProjection) -> None:
        """Make ``fresh`` (committed by the caller) the live index in one atomic swap.

        ``fresh`` releases its writer first, so the running indexer (which notices
        the swap) can take over the new generation; this projection then follows it.
        """
        fresh.close()
        self.location.swap(fresh.directory)
        self.reopen()

    def abort_rebuild(self, fresh: SearchIndexProjection) -> None:
        """Throw an unfinished rebuild's generation away."""
        fresh.close()
        shutil.rmtree(fresh.directory, ignore_errors=True)

    def stale(self) -> bool:
        """True when a rebuild swapped in a new generation under this live projection."""
        return self.live and self.location.current() != self.directory

    def discard(self) -> None:
        """Drop uncommitted changes (``LogFollower``: after a page applied in part)."""
        self.reopen()

    def reopen(self) -> None:
        """Follow the live generation (after a swap), discarding anything uncommitted."""
        self.close()
        self._open(self.location.current_or_new())

    def close(self) -> None:
        """Release the writer (and its directory lock); uncommitted changes are dropped."""
        if self._writer is not None:
            try:
                self._writer.rollback()
            except ValueError:
                pass  # a writer that cannot roll back has nothing left to drop
            self._writer = None

    # -- internals -------------------------------------------------------------------

    def claim_writer(self) -> None:
        """Take the index directory's writer lock now (one writer per index, across
        processes) rather than on the first write; ``StoreError`` if another holds it."""
        self._usable()
        self._open_writer()

    def _usable(self) -> None:
        if self._unusable is not None:
            raise self._unusable

    def _open_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self._index.writer(heap_size=self.heap_mb * 1_000_000)
            except ValueError as e:
                raise StoreError(
                    f"search index {self.directory} is being written by another process ({e})"
                ) from e
        return self._writer

    def _remember_awaiting(self) -> None:
        """Lines awaiting their message are few: the book keeps them all in memory, read once
        when the index is opened and kept across commits."""
        searcher = self._searcher
        query = tantivy.Query.term_query(SCHEMA, "awaiting", FLAG_SET)
        count = searcher.search(query, 1).count
        self._new_book([docs.line_of(searcher.doc(address).to_dict())
                        for _, address in (searcher.search(query, count).hits if count else [])])

    def _new_book(self, awaiting: list[Line]) -> None:
        """A book on the committed index, holding the lines awaiting their message."""
        # Not a bound method: a cycle through self would keep the index writer (and its
        # lock) alive after the last reference to this projection is gone.
        self._book = messages.MemoryBook(partial(_committed_lines, self._searcher))
        for line in awaiting:
            self._book.remember(line)


def _committed_lines(searcher: tantivy.Searcher, room: str, ref: str) -> list[Line]:
    """The committed message lines of ``room`` known by ``ref``, newest first.

    A scan of the hash column: a correction or retraction of a message committed
    before is rare enough that an index of every message's ids would cost more
    than it saves."""
    hits = searcher.search(_ref_query(ref_hash(room.lower(), ref)), MAX_CANDIDATES, order_by_field="key").hits
    found = [docs.line_of(searcher.doc(address).to_dict()) for _, address in hits]
    return [line for line in found if line.room == room and ref in ids(line)]


def _key_query(key: int) -> tantivy.Query:
    return tantivy.Query.range_query(SCHEMA, "key", tantivy.FieldType.Unsigned, key, key)


def _ref_query(ref: int) -> tantivy.Query:
    return tantivy.Query.range_query(SCHEMA, "rhash", tantivy.FieldType.Unsigned, ref, ref)
