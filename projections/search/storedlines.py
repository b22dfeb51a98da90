"""The stored lines of one search's hits, each read once, decoded only as far as a hit shows them."""

from __future__ import annotations

import msgspec
import tantivy

from ..lines import Line

# What a hit shows of its line (``searcher._hits``), and the key that orders its ties (``id``): decoded without the
# rest (the message's ids, occupant, edit bookkeeping), ~0.5 of the ~1.1 us a whole line took at 1M.
SHOWN = ("id", "room", "at", "nick", "jid", "body", "thread", "capture", "edited", "versions", "removed")
ShownLine = msgspec.defstruct(
    "ShownLine",
    [(f.name, f.type, msgspec.field(default=f.default, default_factory=f.default_factory))
     for f in msgspec.structs.fields(Line) if f.name in SHOWN],
    frozen=True, kw_only=True, gc=False,
)
_decode_shown = msgspec.msgpack.Decoder(ShownLine).decode


class StoredLines:
    """The lines of one search's hits by address, each read from the store once: a page's equal
    scores or times are ordered by the keys of the very lines its hits are then made of."""

    def __init__(self, searcher: tantivy.Searcher):
        self._doc = searcher.doc
        self._lines: dict[tuple[int, int], ShownLine] = {}

    def __call__(self, address) -> ShownLine:
        where = (address.segment_ord, address.doc)
        line = self._lines.get(where)
        if line is None:
            line = self._lines[where] = _decode_shown(self._doc(address).get_first("blob"))
        return line
