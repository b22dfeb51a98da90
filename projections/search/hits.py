"""A search page's hits, made of their stored lines: what a search spends per hit."""

from __future__ import annotations

from . import highlight
from .results import Hit, Scope, Sort
from .storedlines import StoredLines


def hits_of(page: list, lines: StoredLines, scope: Scope, marks: highlight.Marks, sort: Sort) -> list[Hit]:
    """The page's hits, in one loop with what every hit uses bound once: most of a rare word's
    search is spent here, per hit."""
    compliance, relevance, snippet, matches = scope.compliance, sort is Sort.RELEVANCE, marks.snippet, marks.matches
    hits = []
    for score, _, _, address in page:
        stored = lines(address)
        line = stored.line
        body = line.body or ""
        history = [version.body for version in line.versions] if compliance else []
        text = body
        if history and not matches(body):
            text = next((old for old in history if matches(old)), body)
        hits.append(Hit(
            position=line.id,
            room=line.room.lower(),
            nick=line.nick or "",
            jid=stored.jid,
            time=stored.time,
            body=body,
            snippet=snippet(text),
            thread=line.thread,
            capture=line.capture or "live",
            edited=line.edited,
            retracted=line.removed is not None,
            earlier_versions=history,
            score=score if relevance else None,
        ))  # fmt: skip
    return hits
