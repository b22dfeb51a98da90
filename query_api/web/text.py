"""Message text for the pages: escaped, with safe links and the search's words marked.

Only ``http``, ``https`` and ``xmpp`` addresses become links (never ``javascript:``,
``data:`` or anything else), and every link carries ``rel="noopener noreferrer
nofollow"``: a message is written by anyone in the room, so its links must
neither reach back into the archive's page nor lend it the archive's standing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape, unescape

from markupsafe import Markup

LINK_REL = "noopener noreferrer nofollow"
_ADDRESS = re.compile(r"(?:https?://|xmpp:)[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\""  # sentence punctuation after an address is not part of it
_MARKED = re.compile(r"<mark>(.*?)</mark>", re.DOTALL)
MAX_MARKED_WORDS = 10
MAX_MARKED_CHARS = 100  # a word a snippet marks; a longer one (from an edited address) made marking quadratic


def message_html(text: str, marked: Iterable[str] = ()) -> Markup:
    """``text`` escaped, its http(s) and xmpp addresses as links, ``marked`` words in ``<mark>``."""
    words = sorted({w for w in marked if w.strip() and len(w) <= MAX_MARKED_CHARS}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None
    out, at = [], 0
    for start, end in _addresses(text):
        out.append(_marked(text[at:start], pattern))
        address = text[start:end]
        out.append(f'<a href="{escape(address)}" rel="{LINK_REL}" target="_blank">{escape(address)}</a>')
        at = end
    out.append(_marked(text[at:], pattern))
    return Markup("".join(out))


def _addresses(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _ADDRESS.finditer(text):
        start, end = match.span()
        # A closing bracket ends an address only when the address opened none (Wikipedia links do). Counted
        # once, then as brackets are trimmed: counting again for each was quadratic in a run of ")".
        opened, closed = text.count("(", start, end), text.count(")", start, end)
        while end > start and (text[end - 1] in _TRAILING or (text[end - 1] == ")" and opened < closed)):
            closed -= text[end - 1] == ")"
            end -= 1
        if text[start:end].rstrip("/").lower() not in ("http:", "https:", "xmpp", "http://", "https://"):
            spans.append((start, end))
    return spans


def _marked(text: str, pattern: re.Pattern | None) -> str:
    if pattern is None:
        return escape(text)
    out, at = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[at : match.start()]))
        out.append(f"<mark>{escape(match.group())}</mark>")
        at = match.end()
    out.append(escape(text[at:]))
    return "".join(out)


def marked_words(snippet_html: str) -> list[str]:
    """The words a search snippet marked (the searcher escapes the text and adds only ``<mark>``)."""
    words = []
    for match in _MARKED.finditer(snippet_html):
        word = unescape(match.group(1)).strip()
        if word and word not in words and len(word) <= MAX_MARKED_CHARS:
            words.append(word)
    return words[:MAX_MARKED_WORDS]
