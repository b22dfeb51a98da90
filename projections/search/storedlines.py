"""The stored lines of searches' hits, each read once (while kept), decoded only as far as a hit shows them."""

from __future__ import annotations

import msgspec
import tantivy

from archive.events import UtcTime

from ..lines import Line

# What a hit shows of its line (``hits.hits_of``), and the key that orders its ties (``id``): decoded without the
# rest (the message's ids, occupant, edit bookkeeping), ~0.5 of the ~1.1 us a whole line took at 1M.
SHOWN = ("id", "room", "nick", "body", "thread", "capture", "edited", "versions", "removed")
ShownLine = msgspec.defstruct(
    "ShownLine",
    [(f.name, f.type, msgspec.field(default=f.default, default_factory=f.default_factory))
     for f in msgspec.structs.fields(Line) if f.name in SHOWN],
    frozen=True, kw_only=True, gc=False,
)


class Shown(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A stored line (``documents.StoredLine``) as far as a hit shows it."""

    time: UtcTime
    jid: str | None
    line: ShownLine


# Not strict: the time, stored as seconds since the epoch, is decoded straight to a datetime (UTC) in the same call;
# the rest is this program's own encoding, read as written.
_decode_shown = msgspec.json.Decoder(Shown, strict=False).decode
# A hit's (segment ordinal, document): one call into tantivy that makes the tuple (~0.9k instructions), where
# reading its two attributes (``attrgetter``) called into it twice (~1.4k).
where_of = tantivy.DocAddress.__getnewargs__


# A reader keeps the lines its searches read (``KeptLines``), at most this many, of at most this many stored
# bytes (a kept line takes 2-3 times its stored bytes in memory).
KEPT_LINES = 8_192
KEPT_BYTES = 4 << 20


class KeptLines:
    """The lines read by a reader's searches, by (segment id, document), for its later searches, on its
    later searchers too: a segment's documents never change (a commit adds segments, a merge makes a new one,
    a delete only hides a document from searches), and every newest (oldest) first page shows the newest
    (oldest) documents again (reading and decoding a line cost ~3 us at 1M: a quarter of a newest page's
    instructions went into its 20 lines). Cleared when full."""

    def __init__(self):
        self.lines: dict[tuple[int, int], Shown] = {}
        self._bytes = 0

    def keep(self, where: tuple[int, int], line: Shown, size: int) -> None:
        if len(self.lines) >= KEPT_LINES or self._bytes + size > KEPT_BYTES:
            self.lines.clear()
            self._bytes = 0
        self.lines[where] = line
        self._bytes += size


class StoredLines:
    """The lines of one search's hits by address, each read from the store once: a page's equal
    scores or times are ordered by the keys of the very lines its hits are then made of; ``kept``:
    the lines read by earlier searches, keyed by ``segments`` (the searcher's segment ids by ordinal)."""

    def __init__(self, searcher: tantivy.Searcher, kept: KeptLines, segments: tuple):
        self._doc = searcher.doc
        self._kept = kept
        self._lines = kept.lines
        self._segments = segments

    def __call__(self, address) -> Shown:
        segment, doc = where_of(address)
        where = (self._segments[segment], doc)
        line = self._lines.get(where)
        if line is None:
            blob = self._doc(address).get_first("blob")
            line = _decode_shown(blob)
            self._kept.keep(where, line, len(blob))
        return line
