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
from collections.abc import Sequence
from pathlib import Path

import msgspec
import tantivy

from archive.errors import StoreError
from archive.events import MessageCorrected, MessagePosted, MessageRetracted, Recorded

from . import documents as docs
from ..follower import ProjectionReset
from .schema import FLAG_SET, SCHEMA, SCHEMA_VERSION, ref_hash
from .storage import IndexLocation

DEFAULT_HEAP_MB = 256


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
        self._pending: dict[int, docs.MessageDoc] = {}
        self._pending_refs: dict[int, int] = {}
        self._position, self._tombs, self._unusable = 0, {}, None
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
        self._tombs = self._load_tombs()

    # -- the Projection protocol -------------------------------------------------

    def position(self) -> int:
        self._usable()
        return self._position

    def apply(self, records: Sequence[Recorded]) -> None:
        self._usable()
        writer = self._open_writer()
        pending, pending_refs = self._pending, self._pending_refs
        try:
            for record in records:
                event = record.event
                if type(event) is MessagePosted:
                    doc = docs.from_message(record.position, event)
                    if self._tombs:
                        self._apply_tombstones(doc)
                    pending[doc.key] = doc
                    for ref in doc.refs:  # a new message has the highest key yet
                        pending_refs[ref] = doc.key
                    writer.add_document(docs.to_tantivy(doc))
                elif type(event) is MessageCorrected:
                    self._correct(record.position, event)
                elif type(event) is MessageRetracted:
                    self._retract(event)
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
        self._pending.clear()
        self._pending_refs.clear()
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

    def _find(self, ref: int) -> docs.MessageDoc | None:
        """The newest message known by ``ref``, uncommitted or committed."""
        key = self._pending_refs.get(ref)
        if key is not None and key > self._position:
            return self._pending[key]  # added since the last commit: newer than anything committed
        # A scan of the hash column: a correction or retraction after a commit is rare
        # enough that an index of every message's ids would cost more than it saves.
        hits = self._searcher.search(_ref_query(ref), 1, order_by_field="key").hits
        if hits and (key is None or hits[0][0] > key):
            found = self._pending.get(hits[0][0])
            return found if found is not None else docs.from_tantivy(self._searcher.doc(hits[0][1]).to_dict())
        return self._pending[key] if key is not None else None

    def _replace(self, doc: docs.MessageDoc) -> None:
        writer = self._writer
        writer.delete_documents_by_query(
            tantivy.Query.range_query(SCHEMA, "key", tantivy.FieldType.Unsigned, doc.key, doc.key)
        )
        writer.add_document(docs.to_tantivy(doc))
        self._pending[doc.key] = doc
        self._remember_refs(doc)

    def _remember_refs(self, doc: docs.MessageDoc) -> None:
        for ref in doc.refs:
            if self._pending_refs.get(ref, -1) < doc.key:
                self._pending_refs[ref] = doc.key

    def _correct(self, position: int, event: MessageCorrected) -> None:
        target_ref = ref_hash(event.room.lower(), event.replaces_id)
        target = self._find(target_ref)
        if target is not None and docs.same_sender(target, event.nick, event.occupant_id):
            self._replace(docs.corrected(target, event))
            return
        own = docs.from_message(position, event, edited=True)
        if target is None and target_ref not in own.refs:
            own.refs.append(target_ref)
        if self._tombs:
            self._apply_tombstones(own)
        self._replace(own)

    def _retract(self, event: MessageRetracted) -> None:
        ref = ref_hash(event.room.lower(), event.target_id)
        tomb = docs.tombstone_of(event)
        target = self._find(ref)
        if target is None:
            self._tombs[ref] = tomb
            self._writer.add_document(docs.tomb_document(ref, tomb))
        elif not target.retracted and docs.may_retract(target, tomb):
            self._replace(msgspec.structs.replace(target, retracted=True))

    def _apply_tombstones(self, doc: docs.MessageDoc) -> None:
        for ref in doc.refs:
            tomb = self._tombs.get(ref)
            if tomb is not None and docs.may_retract(doc, tomb):
                doc.retracted = True
                return

    def _load_tombs(self) -> dict[int, docs.Tombstone]:
        searcher = self._searcher
        query = tantivy.Query.term_query(SCHEMA, "meta", docs.TOMB_MARK)
        count = searcher.search(query, 1).count
        hits = searcher.search(query, count).hits if count else []
        return dict(docs.tomb_from_tantivy(searcher.doc(address).to_dict()) for _, address in hits)


def _ref_query(ref: int) -> tantivy.Query:
    return tantivy.Query.range_query(SCHEMA, "rhash", tantivy.FieldType.Unsigned, ref, ref)
