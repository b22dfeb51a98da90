"""The search index as a projection of the event log (the follower's ``Projection``).

Messages are added in batches; a commit writes the batch together with a
``meta`` document holding the log position reached, so a crash at any point
resumes exactly after the last commit. Corrections and retractions are settled
by the message model in memory (``book``) before documents are written, so most
documents are written once; a document written before its line changed is
deleted by its key term and written again (tantivy applies a delete only to
documents added before it, so the new version survives).

One writer per index directory, across processes: the writer is opened on the
first ``apply``/``commit``, so a process that only starts a rebuild or reads the
position never competes with the running indexer for the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import tantivy

from archive.errors import StoreError
from archive.events import MessageCorrected, MessagePosted, MessageRetracted, PurgeApplied, Recorded

from . import documents as docs
from .. import messages
from ..follower import ProjectionReset
from ..lines import Line, ids
from .book import IndexBook
from .schema import (
    FLAG_SET, SCHEMA, SCHEMA_VERSION, STORED_ONLY, STORED_ONLY_ANALYZER, IndexUnusable, older_schema, ref_hash,
)
from .storage import IndexLocation, RebuildClaim, began_at, generation_id, note_began_at

DEFAULT_HEAP_MB = 256
MAX_CANDIDATES = 8  # messages sharing a ref hash read at a time (by chance, collisions are ~never)
# Log positions a line waits before its document is written: corrections and retractions
# mostly come within this distance, so they change the line, not a written document.
HOLD = 20_000
# Ids kept in memory to find a message by (per generation): beyond them, a column scan.
WINDOW = 200_000
# Most events applied between two commits when far behind (catching up, rebuilding). Each commit
# stalls the writing thread while tantivy flushes a segment per writer thread and leaves more to
# merge; 1M events of the bench's corpus: 10 commits (every 100,000) stalled 2.6-5.5 s, 2 commits
# 1.6-3.0 s. Until a commit the book keeps every line written (and the writer its documents):
# 560-600 MB resident at 100,000, 910-960 MB at 500,000.
MAX_PENDING = 500_000
# One indexing thread: building documents in Python bounds the rate (the thread count is no
# lever for it: shared/PERF-NOTES.md), while each writer thread flushes a segment of its own at
# every commit, which every search then visits (a set-up per segment). At 1M from the bench's
# corpus (a commit every 100k, load 7-8): 4 segments left instead of 7, 32.1 s CPU to build
# instead of 36.4.
WRITER_THREADS = 1
_MESSAGE_EVENTS = (MessagePosted, MessageCorrected, MessageRetracted)
PURGE_OWED = "purge-rebuild-owed"  # in a generation's directory: see ``rebuild_owed``


# Stored lines are compressed in blocks of this many bytes (tantivy's default: 16 KB). A hit's line
# is read from its block decompressed whole unless the block is among the reader's last 100 of the
# segment, which a search's random hits seldom are: at 1M a read cost 7.0 us with 16 KB blocks,
# 3.2 with 4 KB (1.2 us from a cached block), for 10% more bytes per stored line (153 -> 169, lz4).
STORE_BLOCK = 4096


def create_tantivy(directory: Path) -> None:
    """An empty index in a fresh generation directory, its stored lines in ``STORE_BLOCK``
    blocks. The Python binding takes no index settings, so they are written into the new
    index's ``meta.json`` before anything else opens it; tantivy reads them from there when
    the index is opened and applies them to every segment written or merged after."""
    try:
        tantivy.Index(SCHEMA, path=str(directory), reuse=False)
        meta_file = directory / "meta.json"
        meta = json.loads(meta_file.read_bytes())
        meta["index_settings"]["docstore_blocksize"] = STORE_BLOCK
        written = directory / "meta.json.new"
        written.write_text(json.dumps(meta))
        os.replace(written, meta_file)
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot create a search index in {directory}: {e}") from e


def open_tantivy(directory: Path) -> tantivy.Index:
    """Open (or create, when empty) a generation's index and check its schema version."""
    try:
        index = tantivy.Index(SCHEMA, path=str(directory), reuse=True)
        index.register_tokenizer(STORED_ONLY, STORED_ONLY_ANALYZER)
    except ValueError as e:
        raise IndexUnusable(
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
    rebuild_commit_every = MAX_PENDING  # a fresh generation serves nobody before it is swapped in

    def __init__(
        self,
        location: IndexLocation,
        directory: Path | None = None,
        *,
        heap_mb: int = DEFAULT_HEAP_MB,
        hold: int = HOLD,
        window: int = WINDOW,
        stop: threading.Event | None = None,
        keep_replaced: bool = True,
    ):
        self.location = location
        # A projection on the live generation follows swaps; one building a fresh generation does not.
        self.live = directory is None
        self.heap_mb = heap_mb
        self.hold, self.window = hold, window
        self.stop = stop  # once set, a rebuild waiting for another one's end stops waiting (``begin_rebuild``)
        self.keep_replaced = keep_replaced  # False: a rebuild after a purge drops the generation it replaces
        self._writer: tantivy.IndexWriter | None = None
        self._claim: RebuildClaim | None = None  # a fresh generation's (``begin_rebuild``)
        self._open(directory or location.current_or_new(create_tantivy))

    def _open(self, directory: Path) -> None:
        """Open a generation. One this program cannot use (another schema) is remembered,
        not raised: it can still be rebuilt, and only using it raises."""
        self.directory = directory
        self._position, self._unusable, self._broken = 0, None, None
        self._purge_seen = False  # a purge applied to another index, read but not committed (``rebuild_owed``)
        try:
            self._index = open_tantivy(self.directory)
            self._searcher = self._index.searcher()
            self._position, version = read_meta(self._searcher)
            if version != SCHEMA_VERSION:
                raise older_schema(self.directory, version)
        except StoreError as e:
            self._unusable = e
            return
        self._id, self._began_at = generation_id(directory), began_at(directory)
        self._remember_awaiting()

    def began_building(self, head: int) -> None:
        """The log's head as this generation begins to be built from the log's start (``rebuild``, or a first
        index's indexer): a purge recorded applied before it cannot have anything in it (see ``apply``)."""
        note_began_at(self.directory, head)
        self._began_at = began_at(self.directory)

    # -- the Projection protocol -------------------------------------------------

    def position(self) -> int:
        self._usable()
        return self._position

    def apply(self, records: Sequence[Recorded]) -> None:
        self._usable()
        book, step, post = self._book, messages.step, self._book.post
        for record in records:
            event = record.event
            kind = type(event)
            if kind is MessagePosted and post(record.position, event):
                continue
            if kind in _MESSAGE_EVENTS:
                book.apply(record.position, step(record.position, event, book))
            elif kind is PurgeApplied and record.position > self._began_at and event.search_index != self._id:
                # Another index was rebuilt without what a purge deleted, and this one may have read it before the
                # deletion (it began before the record): so must this one be, a fresh one being built too.
                self._purge_seen = True
        if records:
            self._write(book.due(records[-1].position))

    def commit(self, position: int) -> None:
        if self.stale():
            self.reopen()
            raise ProjectionReset(
                f"search index replaced by a rebuild; resuming from position {self._position}"
            )
        self._usable()
        self._write(self._book.due(None))
        writer = self._open_writer()
        if self._purge_seen:
            self._owe_rebuild()
        try:
            writer.delete_documents_by_query(tantivy.Query.term_query(SCHEMA, "meta", FLAG_SET))
            writer.add_document(docs.meta_document(position, SCHEMA_VERSION))
            writer.commit()
            self._index.reload()
        except ValueError as e:
            self._follow_swap(e)
            raise StoreError(f"search index {self.directory}: commit failed: {e}") from e
        self._searcher = self._committed.searcher = self._index.searcher()
        self._book.committed(position)
        self._position = position

    # -- rebuild -------------------------------------------------------------------

    def rebuild_owed(self) -> bool:
        """Whether this generation read (and committed past) a purge another index was rebuilt for: it still
        holds what that purge deleted, until a rebuild replaces it (``SearchIndexer`` makes one)."""
        return (self.directory / PURGE_OWED).exists()

    def _owe_rebuild(self) -> None:
        # Written before the commit that takes the position past the purge record: a process stopped after it
        # still knows, at its next start, that it owes the rebuild.
        try:
            with open(self.directory / PURGE_OWED, "w") as marker:
                marker.write("a purge recorded in the log was applied to another index: rebuild this one\n")
                marker.flush()
                os.fsync(marker.fileno())
        except OSError as e:
            self._follow_swap(e)
            raise StoreError(f"search index {self.directory}: cannot record the rebuild a purge owes: {e}") from e
        self._purge_seen = False

    def begin_rebuild(self) -> SearchIndexProjection:
        """A projection writing a fresh, empty generation (position 0), not yet live; once no other rebuild
        of the index runs (``IndexLocation.claim_rebuild``), held until it is swapped in or thrown away."""
        claim = self.location.claim_rebuild(self.stop)
        try:
            fresh = SearchIndexProjection(self.location, self.location.new_generation(create_tantivy),
                                          heap_mb=self.heap_mb, hold=self.hold, window=self.window)
        except BaseException:
            claim.release()
            raise
        fresh._claim = claim
        return fresh

    def sibling(self, stop: threading.Event, *, keep_replaced: bool) -> SearchIndexProjection:
        """Another projection on the live generation with these settings, writing nothing unless asked: the
        target of a rebuild run beside this one's indexer (which follows its swap)."""
        return SearchIndexProjection(self.location, heap_mb=self.heap_mb, hold=self.hold, window=self.window,
                                     stop=stop, keep_replaced=keep_replaced)

    def finish_rebuild(self, fresh: SearchIndexProjection) -> None:
        """Make ``fresh`` (committed by the caller) the live index in one atomic swap.

        ``fresh`` releases its writer first, so the running indexer (which notices
        the swap) can take over the new generation; this projection then follows it.
        """
        fresh.close()
        try:
            self.location.swap(fresh.directory, keep_replaced=self.keep_replaced)
        finally:
            fresh._claim.release()
        self.reopen()

    def abort_rebuild(self, fresh: SearchIndexProjection) -> None:
        """Throw an unfinished rebuild's generation away."""
        fresh.close()
        shutil.rmtree(fresh.directory, ignore_errors=True)
        fresh._claim.release()

    def _follow_swap(self, error: Exception) -> None:
        """A commit that failed because a rebuild swapped this generation out and dropped it (a purge's) under
        it: ``ProjectionReset`` (the follower goes on from the new one), not an error."""
        if self.stale():
            self.reopen()
            raise ProjectionReset(f"search index replaced by a rebuild; resuming from position {self._position}") from error

    def stale(self) -> bool:
        """True when a rebuild swapped in a new generation under this live projection."""
        return self.live and self.location.current() != self.directory

    def discard(self) -> None:
        """Drop uncommitted changes (``LogFollower``: after a page applied in part)."""
        self.reopen()

    def reopen(self) -> None:
        """Follow the live generation (after a swap), discarding anything uncommitted."""
        self.close()
        self._open(self.location.current_or_new(create_tantivy))

    def close(self) -> None:
        """Release the writer (and its directory lock); uncommitted changes are dropped (never committed).

        It waits for the merges the last commits started, not rolled back nor dropped: a writer killed while
        one of its merges ran (its commit started it in the background) sometimes published the merged segment
        with the deletes of that commit misapplied, a deleted document alive again and a live one hidden (the
        one-truth test, 2 in 5 runs of one history repeated in one index; never once waited for)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.wait_merging_threads()
            except ValueError:
                pass  # a broken writer: its lock is released as it is dropped

    # -- internals -------------------------------------------------------------------

    @property
    def unusable(self) -> StoreError | None:
        """Why the live generation cannot be used (another schema, unreadable), None if it can: it can be rebuilt."""
        return self._unusable

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
                self._writer = self._index.writer(heap_size=self.heap_mb * 1_000_000, num_threads=WRITER_THREADS)
            except ValueError as e:
                raise StoreError(
                    f"search index {self.directory} is being written by another process ({e})"
                ) from e
        return self._writer

    def _write(self, lines: list[Line]) -> None:
        """Delete the documents of changed lines, then write ``lines``' documents.

        A failure leaves lines neither pending nor written: nothing may be committed
        until the uncommitted changes are discarded (``discard``)."""
        if self._broken is not None:
            raise StoreError(self._broken)
        writer, book = self._open_writer(), self._book
        add, document = writer.add_document, docs.to_tantivy
        try:
            for key in book.take_deletes():
                # Not delete_documents_by_term: it makes a signed term of the key, which matches nothing.
                writer.delete_documents_by_query(tantivy.Query.term_query(SCHEMA, "key", key))
            blobs = []
            for line in lines:
                made, blob = document(line)
                add(made)
                blobs.append(blob)
            book.written(lines, blobs)
        except ValueError as e:
            # The message, not the error: its traceback would keep the writer (and its lock) alive.
            self._broken = f"search index {self.directory}: cannot add documents: {e}"
            raise StoreError(self._broken) from e

    def _remember_awaiting(self) -> None:
        """A book on the committed index. Lines awaiting their message are few: it keeps them
        all in memory, read once when the index is opened and kept across commits."""
        # Not on self: a cycle through self would keep the index writer (and its lock)
        # alive after the last reference to this projection is gone.
        self._committed = committed = Committed(self._searcher)
        self._book = IndexBook(committed.lines, committed.line, position=self._position, hold=self.hold, window=self.window)
        query = tantivy.Query.term_query(SCHEMA, "awaiting", FLAG_SET)
        count = committed.searcher.search(query, 1).count
        for _, address in committed.searcher.search(query, count).hits if count else []:
            self._book.hold_awaiting(docs.line_of(committed.searcher.doc(address)))


class Committed:
    """The committed lines, as the book asks for them (``searcher``: the latest commit's)."""

    def __init__(self, searcher: tantivy.Searcher):
        self.searcher = searcher

    def lines(self, room: str, ref: str, owned: bool) -> list[Line]:
        """The committed message lines of ``room`` known by ``ref``, those the room gave it first, each kind
        newest first (``messages.owns``), only those if ``owned``: a scan of the hash column, only for an id the
        book does not keep in memory."""
        ref_query = tantivy.Query.range_query(SCHEMA, "rhash", tantivy.FieldType.Unsigned, *(ref_hash(room.lower(), ref),) * 2)
        found: list[Line] = []
        offset = 0
        while True:
            hits = self.searcher.search(ref_query, MAX_CANDIDATES, order_by_field="key", offset=offset).hits
            lines = [docs.line_of(self.searcher.doc(address)) for _, address in hits]
            found += [line for line in lines if line.room == room and ref in ids(line)
                      and (not owned or messages.owned(line, ref))]
            # A full page: more messages sharing the hash (ids can be chosen to share it, both checksums are
            # cheap to solve for) may be behind it, an owner among them.
            if len(hits) < MAX_CANDIDATES:
                return sorted(found, key=lambda line: messages.owns(line, ref), reverse=True)
            offset += MAX_CANDIDATES

    def line(self, key: int) -> Line | None:
        hits = self.searcher.search(tantivy.Query.term_query(SCHEMA, "key", key), 1).hits
        return docs.line_of(self.searcher.doc(hits[0][1])) if hits else None
