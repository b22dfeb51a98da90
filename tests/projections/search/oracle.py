"""A brute-force model of the search index, written from the rules, not from the code.

``Oracle(records)`` replays events into plain message dicts, as the reference
model of messages (``tests.reference_messages``) says they read; ``matches(node, message, compliance)`` evaluates a
parsed query on one message by scanning its tokens. Tokens come from tantivy's
own analyzers (the same pipelines as the index), so this checks the query
semantics and the scope, not the stemmer.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import tantivy

from projections.search.query import And, Everything, FieldIs, Flag, Fuzzy, Not, Or, Phrase, Prefix, TimeRange, Word
from tests.reference_messages import Reference

_STEM = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)
_PLAIN = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .build()
)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def stems(text: str) -> list[tuple[int, str]]:
    return [(t.position, t.text) for t in _STEM.pre_tokenize(text).tokens]


def plain(text: str) -> list[str]:
    return _PLAIN.analyze(text)


def wordless(node) -> bool:
    """Whether a query has nothing to search for: its text analyses to no word (emoji, punctuation), and its
    operators hold nothing else. The index refuses it (only an empty query means every message)."""
    if isinstance(node, (Word, Phrase, Prefix, Fuzzy)):
        return not plain(node.text)
    if isinstance(node, Not):
        return wordless(node.child)
    if isinstance(node, (And, Or)):
        return all(wordless(child) for child in node.children)
    return False


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (adjacent transposition costs 1), full table."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


class Oracle:
    """The messages as the reference model (tests/reference_messages.py) says they read."""

    def __init__(self):
        self.messages: dict[int, dict] = {}

    def replay(self, records) -> None:
        reference = Reference()
        for record in records:
            reference.feed(record.position, record.event)
        self.messages = {
            m.id: {
                "key": m.id,
                "room": m.room.lower(),
                "nick": m.nick,
                "occupant": m.occ,
                "jid": m.jid.split("/")[0].lower() if m.jid else None,
                "ts": m.at,
                "body": m.texts[-1],
                "history": m.texts[:-1],
                "edited": m.edited,
                "retracted": m.removed,
            }
            for m in reference.lines
            if m.kind == "message"
        }

    # -- queries -----------------------------------------------------------------

    def search(self, node, *, rooms=None, compliance=False) -> list[dict]:
        return [
            m
            for m in self.messages.values()
            if (rooms is None or m["room"] in {r.lower() for r in rooms})
            and (compliance or not m["retracted"])
            and matches(node, m, compliance)
        ]


def _versions(message, compliance):
    return [message["body"], *message["history"]] if compliance else [message["body"]]


def _dropped(node) -> bool:
    """Text that analyses to no token, and operators over nothing else."""
    if isinstance(node, (Word, Phrase)):
        return not stems(node.text)
    if isinstance(node, (Prefix, Fuzzy)):
        return not plain(node.text)
    if isinstance(node, Not):
        return _dropped(node.child)
    if isinstance(node, (And, Or)):
        return all(_dropped(c) for c in node.children)
    return False


def matches(node, message, compliance) -> bool:
    if isinstance(node, Everything):
        return True
    if isinstance(node, And):
        kept = [c for c in node.children if not _dropped(c)]
        return all(matches(c, message, compliance) for c in kept)
    if isinstance(node, Or):
        kept = [c for c in node.children if not _dropped(c)]
        return any(matches(c, message, compliance) for c in kept) if kept else True
    if isinstance(node, Not):
        return True if _dropped(node.child) else not matches(node.child, message, compliance)
    if isinstance(node, (Word, Phrase)):
        wanted = stems(node.text)
        if not wanted:
            return True
        base = wanted[0][0]
        wanted = [(p - base, s) for p, s in wanted]
        for text in _versions(message, compliance):
            have = dict(stems(text))
            if any(all(have.get(start + p) == s for p, s in wanted) for start in have):
                return True
        return False
    if isinstance(node, (Prefix, Fuzzy)):
        # On stems: a prefix of the word or of its stem; a fuzzy word's stem within the
        # distance. Several tokens must all be in the current text, or all in the
        # earlier versions (one field).
        tokens = plain(node.text)
        if not tokens:
            return True
        *exact, last = tokens
        last_stem = stems(last)[0][1]
        wanted = {s for w in exact for _, s in stems(w)}

        def fits(stem: str) -> bool:
            if isinstance(node, Prefix):
                return stem.startswith(last) or stem.startswith(last_stem)
            return edit_distance(stem, last_stem) <= node.distance

        texts = [[message["body"]]] + ([message["history"]] if compliance and message["history"] else [])
        for group in texts:
            have = {s for text in group for _, s in stems(text)}
            if wanted <= have and any(fits(s) for s in have):
                return True
        return False
    if isinstance(node, FieldIs):
        if node.field == "from":
            return message["nick"].lower() == node.value
        if node.field == "jid":
            return message["jid"] == node.value
        return message["room"] == node.value or ("@" not in node.value and message["room"].split("@")[0] == node.value)
    if isinstance(node, TimeRange):
        return (node.start is None or message["ts"] >= node.start) and (node.end is None or message["ts"] < node.end)
    if isinstance(node, Flag):
        return message[node.name]
    raise TypeError(node)


def time_order(found: list[dict], newest: bool) -> list[int]:
    ordered = sorted(found, key=lambda m: (m["ts"], m["key"]), reverse=newest)
    return [m["key"] for m in ordered]


def facet_counts(found: list[dict]) -> tuple[Counter, Counter]:
    return Counter(m["room"] for m in found), Counter(m["nick"] for m in found)
