"""Snippets: a message's text, HTML-escaped, with the query's matches in ``<mark>``.

A token is marked when its stem is one a positive term of the query matches
(a word, a phrase's words, a prefix, a fuzzy term), with character offsets from
the body's own analyzer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape

from .schema import STEM_ANALYZER
from .translate import Highlights

MAX_CHARS = 240
MAX_TOKEN_BYTES = 40  # the body analyzer drops longer tokens (``schema``: remove_long(40))
_STEMS_KEPT = 50_000
_stems: dict[str, str] = {}
_MARKS_KEPT = 256
_marks: dict[tuple, Marks] = {}
# Words decided per kept query: a page's repeat, and with ``_MARKS_KEPT`` queries a bound on what a
# stream of crafted queries and texts can make a process keep (some tens of MB at most, a word with
# its marked form, beside ``_stems``).
_SEEN_KEPT = 512
# The only characters past ASCII whose lowercase holds an ASCII letter (İ, the Kelvin sign; checked
# in the tests): a token holding one may match an ASCII stem that no ASCII candidate shows.
_LOWERS_TO_ASCII = re.compile("[\u0130\u212a]").search


class Marks:
    """A query's highlights made ready for many texts: one search's hits share the candidate
    pattern and sets, built once instead of for every hit (a fifth of a rare-word search's
    time went into rebuilding them)."""

    def __init__(self, highlights: Highlights):
        self.stems = frozenset(highlights.stems)
        self.prefixes = tuple(sorted(highlights.prefixes))
        self.fuzzy = frozenset(highlights.fuzzy)
        self.any = bool(self.stems or self.prefixes or self.fuzzy)
        starts = self.stems | set(self.prefixes)
        self._ascii = all(word.isascii() for word in starts)
        firsts = {word[0] for word in starts}
        letters = "".join(sorted(firsts | {c.upper() for c in firsts}))
        # ASCII text: only the tokens starting with a letter a stem or prefix starts with can match, and
        # only those at least as long as the shortest of them (English stemming never lengthens a word):
        # most tokens fail in C, without a call here for each (a rare word's line 3.7 -> 1.1 us).
        # The letter first, the token's start checked behind it: the engine then skips to the next such
        # letter in C (led by the look-behind, it tried every position: a rare word's hit 3.95 -> 3.39 us).
        first = f"[{re.escape(letters)}]"
        rest = min(map(len, starts), default=1) - 1
        self._seen: dict[str, str] = {}  # candidate token -> itself, marked or not
        self._candidates = re.compile(rf"{first}(?<![A-Za-z0-9]{first})[A-Za-z0-9]{{{rest},}}") if letters else None
        # The same candidates in the escaped text. The runs of letters and digits inside its entities
        # (&amp; &#x27;) follow "&" or "&#", which no token of the text does (its "&" became "&amp;").
        def escaped_candidates(first: str) -> Callable:
            return re.compile(rf"{first}(?<![A-Za-z0-9&]{first})(?<!&#{first})[A-Za-z0-9]{{{rest},}}").sub

        # (character that a text holds, pass marking it). Where every candidate starts with one letter (a word
        # query), a pass for each case: led by one character, the engine finds the next as str.find does in C,
        # led by a set it tests every position (a common word's line 1.5 -> 0.8 us); a pass for each of more
        # letters cost more. The pass of "m" goes first: a later one would find the m of the marks inserted before it.
        if len({c.lower() for c in letters}) == 1:
            self._passes = tuple((c, escaped_candidates(re.escape(c))) for c in sorted(letters, key=lambda c: c != "m"))
        else:
            self._passes = (("", escaped_candidates(first)),) if letters else ()

    def matches(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text`` whose stems the query matches."""
        if not self.any:
            return []
        if not self.fuzzy and (text.isascii() or (self._ascii and not _LOWERS_TO_ASCII(text))):
            spans = self._ascii_matches(text)
            if spans is not None:
                return spans
        return analyzed_matches(text, self.stems, self.prefixes, self.fuzzy)

    def snippet(self, text: str, max_chars: int = MAX_CHARS) -> str:
        """The text, HTML-escaped, trimmed around its first match, matches in ``<mark>``."""
        if self._candidates and not self.fuzzy:
            quick = self._quick_snippet(text, max_chars)
            if quick is not None:
                return quick
        spans = self.matches(text)
        # Most chat lines hold nothing to escape: then their pieces need no escape() each.
        esc = escape if _has_markup(text) else str
        if not spans and len(text) <= max_chars:
            return esc(text)
        start, end = _window(text, spans[0][0] if spans else 0, max_chars)
        out = ["…" if start > 0 else ""]
        at = start
        for lo, hi in spans:
            if hi <= start or lo >= end:
                continue
            lo, hi = max(lo, start), min(hi, end)
            out.append(esc(text[at:lo]))
            out.append(f"<mark>{esc(text[lo:hi])}</mark>")
            at = hi
        out.append(esc(text[at:end]))
        if end < len(text):
            out.append("…")
        return "".join(out)

    def _quick_snippet(self, text: str, max_chars: int) -> str | None:
        """``snippet`` marked in one pass over the escaped text, or None where only the analyzer's
        tokens tell (as in ``_ascii_matches``) or a long text's window cuts a token: the candidates are
        decided by ``_marked``, the rest copied in C, without spans or pieces (at 1M a common word's
        line 1.6 us; piece by piece 3.5 past ASCII, 4.9 with something to escape, 7.6 past ``max_chars``)."""
        if text.isascii():
            if len(text) <= max_chars:
                return self._mark_escaped(_escaped(text), self._marked)
            # Only the window is marked: the first match places it.
            first = next((token.start() for token in self._candidates.finditer(text) if self._is_match(token.group())), 0)
            start, end = _window(text, first, max_chars)
            if _cuts_token(text, start) or _cuts_token(text, end):
                return None
            part = text[start:end]
            marked = self._mark_escaped(_escaped(part), self._marked)
            return f"{'…' if start else ''}{marked}{'…' if end < len(text) else ''}"
        if len(text) > max_chars or not self._ascii or _LOWERS_TO_ASCII(text):
            return None
        try:
            return self._mark_escaped(_escaped(text), self._marked_apart)
        except _AnalyzerNeeded:
            return None

    def _mark_escaped(self, escaped: str, marked: Callable[[re.Match], str]) -> str:
        for char, sub in self._passes:  # "" is in every text
            if char in escaped:
                escaped = sub(marked, escaped)
        return escaped

    def _marked_apart(self, token: re.Match) -> str:
        """``_marked`` in text past ASCII, where a candidate next to a character past ASCII is part of a
        longer token of the analyzer's."""
        text, (lo, hi) = token.string, token.span()
        if not (text[lo - 1 : lo].isascii() and text[hi : hi + 1].isascii()):
            raise _AnalyzerNeeded
        return self._marked(token)

    def _ascii_matches(self, text: str) -> list[tuple[int, int]] | None:
        """``matches`` of text (ASCII, or holding no ``_LOWERS_TO_ASCII``, for a query of ASCII
        stems) without tokenizing all of it: the body analyzer's tokens of ASCII are runs of letters
        and digits, and English stemming keeps a word's first letter and never lengthens a word
        (stems of the candidates cached). A token holding other characters has a stem holding them
        (suffixes are ASCII), so it can only match where its leading ASCII run is a candidate that
        touches one: then None, and the text is left to the analyzer (the tokenizer's letters past
        ASCII are Unicode's, not Python's)."""
        if self._candidates is None:
            return []
        spans = []
        ascii_text = text.isascii()
        for token in self._candidates.finditer(text):
            lo, hi = token.span()
            if not ascii_text and not (text[lo - 1 : lo].isascii() and text[hi : hi + 1].isascii()):
                return None
            if self._is_match(token.group()):
                spans.append((lo, hi))
        return spans

    def _marked(self, token: re.Match) -> str:
        # A page's hits repeat their matching words (a rare word is in every one): decided once per word.
        word = token.group()
        if len(word) >= MAX_TOKEN_BYTES:  # never marked (the analyzer drops it), never kept
            return word
        out = self._seen.get(word)
        if out is None:
            if len(self._seen) >= _SEEN_KEPT:  # a kept query's (``marks_for``) words, bounded
                self._seen.clear()
            out = self._seen[word] = f"<mark>{word}</mark>" if self._is_match(word) else word
        return out

    def _is_match(self, word: str) -> bool:
        """Whether an ASCII candidate token's stem is one the query matches (stems cached)."""
        if len(word) >= MAX_TOKEN_BYTES:
            return False
        stem = _stems.get(word)
        if stem is None:
            if len(_stems) >= _STEMS_KEPT:
                _stems.clear()
            stem = _stems[word] = STEM_ANALYZER.analyze(word)[0]
        return stem in self.stems or bool(self.prefixes and stem.startswith(self.prefixes))


def marks_for(highlights: Highlights) -> Marks:
    """The ``Marks`` of a query's highlights, kept across searches (the same query again, its next
    pages, another sort): building them cost ~5 us of a rare word's ~250 us search."""
    key = (frozenset(highlights.stems), frozenset(highlights.prefixes), frozenset(highlights.fuzzy))
    marks = _marks.get(key)
    if marks is None:
        if len(_marks) >= _MARKS_KEPT:
            _marks.clear()
        marks = _marks[key] = Marks(highlights)
    return marks


def analyzed_matches(text: str, stems, prefixes: tuple[str, ...], fuzzy) -> list[tuple[int, int]]:
    """``matches`` from the body analyzer's own tokens (any text, any query)."""
    spans = []
    for token in STEM_ANALYZER.pre_tokenize(text).tokens:
        stem = token.text
        if (
            stem in stems
            or (prefixes and stem.startswith(prefixes))
            or (fuzzy and any(osa_distance(stem, f, limit=d) <= d for f, d in fuzzy))
        ):
            spans.append((token.char_offset_from, token.char_offset_to))
    return spans


def osa_distance(a: str, b: str, limit: int = 2) -> int:
    """Levenshtein distance with adjacent transpositions costing 1 (optimal string
    alignment), as tantivy's fuzzy term query counts; anything above ``limit`` is
    reported as ``limit + 1``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[len(b)], limit + 1)


def _has_markup(text: str) -> bool:
    """Whether ``text`` holds what html.escape(quote=True) changes: five scans as str.find runs them (a
    character set in the regex engine, tested at every position, took three times as long)."""
    return "&" in text or "<" in text or ">" in text or '"' in text or "'" in text


def _escaped(text: str) -> str:
    return escape(text) if _has_markup(text) else text


class _AnalyzerNeeded(Exception):
    """A quick snippet's text holds a candidate that only the analyzer's tokens decide."""


def _cuts_token(text: str, at: int) -> bool:
    """Whether a window's edge in ASCII text falls inside a run of letters and digits."""
    return 0 < at < len(text) and text[at - 1].isalnum() and text[at].isalnum()


def _window(text: str, first: int, max_chars: int) -> tuple[int, int]:
    """The part of ``text`` a snippet shows, placed by its first match's start (0 for none)."""
    if len(text) <= max_chars:
        return 0, len(text)
    start = max(0, first - max_chars // 4)
    if start > 0:
        space = text.find(" ", start, first)
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + max_chars)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > first else end
    return start, end
