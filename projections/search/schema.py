"""The index's tantivy schema and the analyzers that must agree with it.

One document per message (the original's log position is its ``key``), plus one
``meta`` document holding the log position the index has reached and the schema
version, replaced in every commit, and documents of retractions whose
message has not been indexed (yet) (see ``documents``).

- ``body``: current text, English stemming (``en_stem``), positions for phrases.
- ``history``: earlier versions of a corrected message (one value each) and the
  text of a retracted one, only searched in compliance scope: ``body`` holds only
  text that every scope may find.
- ``prefix*`` and ``fuzzy~`` work on the same stems (an unstemmed copy of every
  body, or a vocabulary of every word as documents, each cost as much to index
  as all the rest of a message).
- ``room``, ``jid``: lowercased exact terms; ``nick`` exact (facets, display),
  ``nick_lc`` lowercased exact (``from:`` is case-insensitive).
- ``key`` (the line's id): an indexed term and a column (sorting, ties): the
  term lets a changed line's document be deleted, and a committed line be
  fetched, without a scan. ``ts`` (the room order's second, in microseconds
  since the epoch): a column only, for sorting and ranges.
- ``span``: the time buckets ``ts`` falls in, one term per level (``span_terms``):
  a time sort searches the newest (oldest) buckets first instead of ordering every
  match, and finds the newest bucket in the term dictionary.
- Only ``blob`` (the line behind what a hit shows of it, JSON text) is stored: a hit is made from it, as is the
  message model's next step, so no field is stored (and compressed) twice.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import tantivy

from archive.errors import StoreError

SCHEMA_VERSION = 8  # 2: message lines of the message model (blob, awaiting); 3: key indexed, only blob stored; 4: span;
# 5: a retracted message's text in history, not body; 6: blob stored as JSON text, not msgpack bytes; 7: blob an array
# of a hit's time and bare JID, then the line (``documents.StoredLine``); 8: the line's removal and versions say how
# they were captured, its current text too (``edit_capture``): a line stored before reads them as live


class IndexUnusable(StoreError):
    """This program cannot use the index (an earlier schema, unreadable files): it must be rebuilt from the log."""


def older_schema(directory: object, version: int) -> IndexUnusable:
    return IndexUnusable(f"search index {directory} has schema version {version}, this program {SCHEMA_VERSION}: "
                         "rebuild it with chat-archive rebuild search")

BODY_TOKENIZER = "en_stem"
# The line is stored as text (JSON, ``documents.stored``): tantivy reads a stored bytes value back a byte
# at a time (at 1M ~6.5k instructions a hit's msgpack line, a tenth of a newest page), a text value in one copy,
# and text of ASCII (a line's JSON but for a body's letters past it) is checked and made a str in word-sized steps.
# A text field is always indexed: the blob's analyzer makes no term (its one raw token is dropped, as no
# line's encoding is empty), registered on every index opened (``projection.open_tantivy``).
STORED_ONLY = "stored_only"

# Flags are only added when set: absent means false, at no indexing cost.
FLAG_SET = 1


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    # A term per key costs about as much to index as a flag (measured): far less than
    # the column scan that deleting or fetching a document by a column value costs.
    sb.add_unsigned_field("key", indexed=True, fast=True)
    sb.add_integer_field("ts", fast=True)
    # One value of space-separated terms: one call per document, not one per level.
    sb.add_text_field("span", tokenizer_name="whitespace", index_option="basic")
    sb.add_text_field("body", tokenizer_name=BODY_TOKENIZER)
    sb.add_text_field("history", tokenizer_name=BODY_TOKENIZER)
    sb.add_text_field("room", fast=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("nick", fast=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("nick_lc", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("jid", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("thread", tokenizer_name="raw", index_option="basic")
    # A message's ids as 64-bit hashes, a column only: indexing a term per id costs a
    # third of the indexing rate; the column is scanned only for a message older than
    # the ids the projection keeps in memory (``book``).
    sb.add_unsigned_field("rhash", fast=True)
    sb.add_unsigned_field("edited", indexed=True)
    sb.add_unsigned_field("retracted", indexed=True)
    sb.add_unsigned_field("meta", stored=True, indexed=True)
    sb.add_unsigned_field("position", stored=True)
    sb.add_unsigned_field("version", stored=True)
    sb.add_unsigned_field("awaiting", indexed=True)
    sb.add_text_field("blob", stored=True, tokenizer_name=STORED_ONLY, index_option="basic")
    return sb.build()


SCHEMA = build_schema()


def _analyzer(stem: bool) -> tantivy.TextAnalyzer:
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
    )
    if stem:
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


STORED_ONLY_ANALYZER = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw()).filter(tantivy.Filter.remove_long(1)).build()

# The same pipelines as tantivy's built-in "en_stem" and "default" tokenizers,
# so that query terms are analysed exactly as the indexed text was.
STEM_ANALYZER = _analyzer(stem=True)
WORD_ANALYZER = _analyzer(stem=False)


# Time buckets: a ``ts`` (shifted to be non-negative) in units of 2**32 us (71.6 minutes), as
# 8 hex digits; a level is a prefix of them, led by its digit count, so level d's bucket is 16
# of level d+1's (71.6 min, 19 h, 12.7 days, 204 days) and the term dictionary lists a
# bucket's children by prefix. Coarser levels would hold nearly everything: no use as windows.
SPAN_SHIFT = 32
SPAN_OFFSET = 2**62
SPAN_LEVELS = (8, 7, 6, 5)  # finest first


def span_unit(ts: int) -> int:
    """The finest bucket of a ``ts``."""
    return (ts + SPAN_OFFSET) >> SPAN_SHIFT


def span_term(unit: int, level: int) -> str:
    """The term of the bucket at ``level`` that holds the finest bucket ``unit``."""
    return f"{level}{unit >> 4 * (8 - level):0{level}x}"


@functools.lru_cache(maxsize=1024)
def span_terms(unit: int) -> str:
    """The ``span`` value of a document in the finest bucket ``unit`` (consecutive
    messages mostly share one: cached)."""
    return " ".join(span_term(unit, level) for level in SPAN_LEVELS)


# A room's people are few and post again and again (a page of hits, a rebuild's every document): their
# bare JIDs are looked up, not split again.
@functools.lru_cache(maxsize=4096)
def bare_jid(jid: str | None) -> str | None:
    """The lowercased bare JID (no resource), as indexed and matched by ``jid:``."""
    if not jid:
        return None
    return jid.split("/", 1)[0].lower()


def ref_hash(room_lc: str, ident: str) -> int:
    """How corrections and retractions find a message in a room (lowercased JID) by
    any of its ids: stanza-id, message id, origin-id. Ids of different kinds never
    collide in practice (random), and a client's origin-id usually equals its
    message id: one ref instead of two."""
    return room_terms(room_lc)[1](ident)


@functools.lru_cache(maxsize=4096)
def room_terms(room: str) -> tuple[str, Callable[[str], int]]:
    """A room's indexed term (its lowercased JID) and the ``ref_hash`` of an id in it.

    Two cheap checksums of ``<room>\x1f<id>`` make 64 bits: ample against accidental
    collisions among one room's ids, at a fifth of the cost of a cryptographic hash per
    message. Both checksums continue from the room's part, computed once per room."""
    room_lc = room.lower()
    prefix = f"{room_lc}\x1f".encode()
    crc, adler, crc32, adler32 = zlib.crc32(prefix), zlib.adler32(prefix), zlib.crc32, zlib.adler32

    def hash_of(ident: str) -> int:
        data = ident.encode()
        return crc32(data, crc) << 32 | adler32(data, adler)

    return room_lc, hash_of
