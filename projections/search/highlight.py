"""Snippets: a message's text, HTML-escaped, with the query's matches in ``<mark>``.

A token is marked when its stem is one the query's positive terms match
(prefix and fuzzy terms included, through their expansion), with character
offsets from the body's own analyzer.
"""

from __future__ import annotations

from html import escape

from .schema import STEM_ANALYZER
from .translate import Highlights

MAX_CHARS = 240


def snippet(text: str, highlights: Highlights, max_chars: int = MAX_CHARS) -> str:
    spans = matches(text, highlights)
    start, end = _window(text, spans, max_chars)
    out = ["…" if start > 0 else ""]
    at = start
    for lo, hi in spans:
        if hi <= start or lo >= end:
            continue
        lo, hi = max(lo, start), min(hi, end)
        out.append(escape(text[at:lo]))
        out.append(f"<mark>{escape(text[lo:hi])}</mark>")
        at = hi
    out.append(escape(text[at:end]))
    if end < len(text):
        out.append("…")
    return "".join(out)


def matches(text: str, highlights: Highlights) -> list[tuple[int, int]]:
    """Character spans of the tokens of ``text`` whose stems the query matches."""
    if not highlights.stems:
        return []
    return [
        (token.char_offset_from, token.char_offset_to)
        for token in STEM_ANALYZER.pre_tokenize(text).tokens
        if token.text in highlights.stems
    ]


def _window(text: str, spans: list[tuple[int, int]], max_chars: int) -> tuple[int, int]:
    if len(text) <= max_chars:
        return 0, len(text)
    first = spans[0][0] if spans else 0
    start = max(0, first - max_chars // 4)
    if start > 0:
        space = text.find(" ", start, first)
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + max_chars)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > first else end
    return start, end
