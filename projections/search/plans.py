"""A query's plan: its text and the caller's scope made into the tantivy query a search runs, with
what its pages and snippets need; kept across searches where nothing but the text and scope made it.

Parsing, analysing the words and building the term, boolean and scope queries cost ~10-40 us of every
search (at 1M, ~5% of a rare word's or a room filter's search), the same for every search of the same text in the same scope: its next pages, its other sort orders, and
the same query from anyone with the same scope, on any commit. A plan holds no searcher state: the
index's rooms (``room:lobby`` expands to the rooms named so) and the clock (``after:-7d``) change its
query, so a query that uses either is planned for each search and never kept.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tantivy import Occur, Query

from archive.errors import InvalidQueryError

from .documents import TOMB_MARK
from .query import Everything, Node, parse
from .results import Scope
from .schema import FLAG_SET, SCHEMA
from .translate import Highlights, Translator, required_stems

# A union of term postings costs per candidate and room, a term set per document of those rooms:
# the first wins for the few rooms most callers see.
FEW_ROOMS = 32
# What crafted queries can make a process keep: a plan of a longest query (4,096 characters, 256 words)
# holds ~120 KB; of one this long at most ~8 KB, so at most ~2 MB in all.
PLANS_KEPT = 256
KEPT_CHARS = 256
# A plan also holds its scope's rooms (the key's set, and the query's own copy of them): ~200 bytes a room,
# so 256 plans of a caller who sees 5,000 rooms held ~260 MB. At most this many rooms in all (~4 MB).
ROOMS_KEPT = 20_000


class Plan:
    """``node``: the syntax tree; ``base``: the query every page of it runs (scope enforced);
    ``phrases``: whether it asks for a phrase (long runs of equal scores); ``highlights``: what its
    snippets mark (their ``Marks`` are kept by ``highlight.marks_for``, which bounds what the words they
    decide hold); ``stems``: the stems every match holds outside compliance scope (``required_stems``)."""

    __slots__ = ("node", "base", "phrases", "highlights", "stems")

    def __init__(self, node: Node, base: Query, phrases: bool, highlights: Highlights, stems: frozenset[str]):
        self.node, self.base, self.phrases, self.highlights, self.stems = node, base, phrases, highlights, stems


_plans: dict[tuple[str, Scope], Plan] = {}


def parsed(text: str, scope: Scope, now: datetime | None) -> Node:
    """The syntax tree of ``text``, from its kept plan where there is one (``parse`` raises for a
    malformed query, as before any search)."""
    plan = _plans.get((text, scope))
    return plan.node if plan is not None else parse(text, now=now)


def plan_for(text: str, node: Node, scope: Scope, rooms_with_local: Callable[[str], list[str]]) -> Plan:
    """The plan of ``node`` (parsed from ``text``) in ``scope``: the kept one, or made now and kept
    where nothing but the text and scope made it (and the text is short). Raises ``InvalidQueryError`` for a filter the scope
    refuses (``is:retracted``, ``jid:``)."""
    plan = _plans.get((text, scope))
    if plan is not None:
        return plan
    translator = Translator(compliance=scope.compliance, rooms_with_local=rooms_with_local, jids=scope.jids)
    matched = translator.translate(node)
    if matched is None and not isinstance(node, Everything):
        raise InvalidQueryError(f"{text.strip()[:80]!r} holds no word to search for (punctuation and symbols are not "
                                "indexed): give a word, or an empty query for every message")
    clauses = _scope_clauses(scope, matched, translator.matches_every_document, translator.needs_current_text)
    clauses += [(Occur.Must, matched)] if matched else []
    # A lone clause goes bare: the same scores, and tantivy scores a term without the boolean's overhead.
    base = clauses[0][1] if len(clauses) == 1 and clauses[0][0] is Occur.Must else Query.boolean_query(clauses)
    plan = Plan(node, base, translator.phrases, translator.highlights, frozenset(required_stems(node)))
    rooms = len(scope.rooms) if scope.rooms is not None else 0
    if translator.fixed and len(text) <= KEPT_CHARS and rooms <= ROOMS_KEPT:
        if len(_plans) >= PLANS_KEPT or _kept_rooms() + rooms > ROOMS_KEPT:
            _plans.clear()
        _plans[(text, scope)] = plan
    return plan


def _kept_rooms() -> int:
    """The rooms the kept plans' scopes hold: summed when a plan is made (10-40 us), never on a kept one's use.
    Over a copy of the keys: another thread's search may keep a plan meanwhile."""
    return sum(len(scope.rooms) for _, scope in list(_plans) if scope.rooms is not None)


def _scope_clauses(
    scope: Scope, matched: Query | None, matches_every_document: bool, needs_current_text: bool
) -> list[tuple[Occur, Query]]:
    if scope.rooms is None:
        # Not a filter that visits every message (it would cost more than the search): only
        # the few documents that are not messages are excluded, where the query can match them.
        clauses = []
        if matched is None or matches_every_document:
            clauses = [
                (Occur.MustNot, Query.term_query(SCHEMA, "meta", FLAG_SET)),
                (Occur.MustNot, Query.term_query(SCHEMA, "meta", TOMB_MARK)),
            ]
        if matched is None:
            clauses.insert(0, (Occur.Must, Query.all_query()))
    else:
        rooms = sorted({room.lower() for room in scope.rooms})
        if len(rooms) <= FEW_ROOMS:
            allowed = Query.boolean_query([(Occur.Should, Query.term_query(SCHEMA, "room", r)) for r in rooms])
        else:
            allowed = Query.term_set_query(SCHEMA, "room", rooms)
        clauses = [(Occur.Must, allowed)]
    if not scope.compliance and not needs_current_text:
        clauses.append((Occur.MustNot, Query.term_query(SCHEMA, "retracted", FLAG_SET)))
    return clauses
