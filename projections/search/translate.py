"""From a query's syntax tree to a tantivy ``Query``, built term by term.

Query strings are never handed to tantivy's own parser (its traps: ``AND NOT``,
``word~`` and ``wor*`` silently match nothing). Words and phrases are analysed
with the body's own analyzer (English stems). ``prefix*`` and ``fuzzy~`` match
those stems too: ``deploy*`` finds stems starting with "deploy" (deployed,
deployment) and ``lazy*`` those starting with "lazy" or its stem "lazi";
``kubernets~`` finds stems within one edit of its stem "kubernet". A prefix that
runs past a word's stem finds only longer stems (``runn*``: runner, not running,
whose stem is "run"). In compliance scope every text form also matches ``history``: earlier
versions of corrected messages and a retracted message's text.

Words that analyse to nothing (punctuation, emoji) are dropped, so ``hello !!!``
and ``hello OR !!!`` are ``hello``; a word of several tokens (``don't``,
``e-mail``) is a phrase of them, as in the body.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import tantivy
from tantivy import Occur, Query

from archive.errors import InvalidQueryError

from ..tables import micros

from .query import And, Everything, FieldIs, Flag, Fuzzy, Node, Not, Or, Phrase, Prefix, TimeRange, Word
from .schema import FLAG_SET, SCHEMA, STEM_ANALYZER, WORD_ANALYZER


class Highlights(msgspec.Struct):
    """What the positive text terms of a query match, in stems, for snippets."""

    stems: set[str] = msgspec.field(default_factory=set)
    prefixes: set[str] = msgspec.field(default_factory=set)
    fuzzy: set[tuple[str, int]] = msgspec.field(default_factory=set)


class Translator:
    """One query's translation; ``rooms_with_local`` expands ``room:lobby`` to full room JIDs."""

    def __init__(self, *, compliance: bool, rooms_with_local: Callable[[str], list[str]], jids: bool = False):
        self.compliance = compliance
        self.jids = jids
        self.rooms_with_local = rooms_with_local
        self.highlights = Highlights()
        self.phrases = False
        """Whether the query asks for a phrase (not negated): all of a phrase's matches of one length
        score alike, so its runs of equal scores are long (a common phrase's, at 1M, longer than
        the searcher's tie window)."""
        self.matches_every_document = False
        """Whether a part of the query matches every document (a negation), so the index's own
        documents (position, awaiting retractions: nothing but ``meta``) too. A query made only of
        field terms never matches those: no exclusion clause needed, and each costs a common-word
        search a fifth of its time."""
        self.fixed = True
        """Whether the query depends on nothing but its text and the scope: no time range (a relative
        one counts back from the time it was parsed) and no room named by its local part (expanded to
        the index's rooms so named), so that its translation holds for every search of the same text."""
        self.needs_current_text = False
        """Whether every document the query matches has a match in ``body`` (set by ``translate``):
        a retracted message's text is not in ``body`` (``documents``), so such a query never matches
        one outside compliance scope, and needs no clause excluding them (at 1M, 10 interleaved rounds
        at load 5, CPU: a common word's search 1.34 -> 1.07 ms; a term with an exclusion is scored
        match by match, a bare term block by block)."""

    def translate(self, node: Node) -> Query | None:
        """The query for ``node``, or None where it is dropped (text that analyses to
        no token, and operators left with nothing but such text)."""
        query, self.needs_current_text = self._translate(node, False)
        return query

    def _translate(self, node: Node, negated: bool) -> tuple[Query | None, bool]:
        """The query for ``node`` and whether every document it matches has a match in ``body``."""
        if isinstance(node, And):
            return self._and(node, negated)
        if isinstance(node, Or):
            parts = [part for child in node.children if (part := self._translate(child, negated))[0] is not None]
            if len(parts) <= 1:
                return parts[0] if parts else (None, False)
            return Query.boolean_query([(Occur.Should, part) for part, _ in parts]), all(text for _, text in parts)
        if isinstance(node, Not):
            inner, _ = self._translate(node.child, not negated)
            if inner is None:
                return None, False
            return Query.boolean_query([(Occur.Must, self._everything()), (Occur.MustNot, inner)]), False
        if isinstance(node, (Word, Phrase)):
            return self._on_text(self._text(node.text, negated))
        if isinstance(node, Prefix):
            return self._on_text(self._per_token(node.text, negated, prefix=True))
        if isinstance(node, Fuzzy):
            return self._on_text(self._per_token(node.text, negated, distance=node.distance))
        if isinstance(node, FieldIs):
            return self._field(node), False
        if isinstance(node, TimeRange):
            self.fixed = False
            bounds = {}
            if node.start is not None:
                bounds.update(lower_bound=micros(node.start), include_lower=True)
            if node.end is not None:
                bounds.update(upper_bound=micros(node.end), include_upper=False)
            return Query.range_query(SCHEMA, "ts", tantivy.FieldType.Integer, **bounds), False
        if isinstance(node, Flag):
            if node.name == "retracted" and not self.compliance:
                raise InvalidQueryError(
                    f"is:retracted at position {node.position} is only available in compliance scope",
                    node.position,
                )
            return Query.term_query(SCHEMA, node.name, FLAG_SET), False
        if isinstance(node, Everything):
            return None, False
        raise TypeError(f"not a query node: {node!r}")

    def _on_text(self, query: Query | None) -> tuple[Query | None, bool]:
        # In compliance scope text also matches ``history`` (``_with_history``).
        return query, query is not None and not self.compliance

    def _and(self, node: And, negated: bool) -> tuple[Query | None, bool]:
        clauses, text = [], False
        for child in node.children:
            if isinstance(child, Not):
                inner, _ = self._translate(child.child, not negated)
                if inner is not None:
                    clauses.append((Occur.MustNot, inner))
            else:
                part, needs_text = self._translate(child, negated)
                if part is not None:
                    clauses.append((Occur.Must, part))
                    text |= needs_text
        if not clauses:
            return None, False
        if all(occur is Occur.MustNot for occur, _ in clauses):
            clauses.insert(0, (Occur.Must, self._everything()))
        return Query.boolean_query(clauses), text

    def _everything(self) -> Query:
        self.matches_every_document = True
        return Query.all_query()

    def _text(self, text: str, negated: bool) -> Query | None:
        tokens = [(t.position, t.text) for t in STEM_ANALYZER.pre_tokenize(text).tokens]
        if not tokens:
            return None
        if not negated:
            self.highlights.stems.update(word for _, word in tokens)
            self.phrases |= len(tokens) > 1
        base = tokens[0][0]
        tokens = [(position - base, word) for position, word in tokens]

        def on(field: str) -> Query:
            if len(tokens) == 1:
                return Query.term_query(SCHEMA, field, tokens[0][1])
            return Query.phrase_query(SCHEMA, field, tokens)

        return self._with_history(on("body"), lambda: on("history"))

    def _per_token(self, text: str, negated: bool, *, prefix: bool = False, distance: int = 0) -> Query | None:
        """``prefix*`` / ``fuzzy~``: one token as asked; of several (``e-mai*``), the last as
        asked and the others as plain words, all in the same text."""
        tokens = WORD_ANALYZER.analyze(text)
        if not tokens:
            return None
        *exact, last = tokens
        exact_stems = [stem for word in exact for stem in STEM_ANALYZER.analyze(word)]
        last_stem = STEM_ANALYZER.analyze(last)[0]
        starts = sorted({last, last_stem})
        if not negated:
            self.highlights.stems.update(exact_stems)
            if prefix:
                self.highlights.prefixes.update(starts)
            else:
                self.highlights.fuzzy.add((last_stem, distance))

        def on(field: str) -> Query:
            if prefix:
                # Tokens are letters and digits only: nothing to escape in the regex.
                final = _any([Query.regex_query(SCHEMA, field, start + ".*") for start in starts])
            else:
                final = Query.fuzzy_term_query(SCHEMA, field, last_stem, distance, True)
            parts = [Query.term_query(SCHEMA, field, stem) for stem in exact_stems] + [final]
            return parts[0] if len(parts) == 1 else Query.boolean_query([(Occur.Must, p) for p in parts])

        return self._with_history(on("body"), lambda: on("history"))

    def _with_history(self, current: Query, history: Callable[[], Query]) -> Query:
        if not self.compliance:
            return current
        return _any([current, history()])

    def _field(self, node: FieldIs) -> Query:
        if node.field == "from":
            return Query.term_query(SCHEMA, "nick_lc", node.value)
        if node.field == "jid":
            if not self.jids:
                raise InvalidQueryError(
                    f"jid: at position {node.position} needs permission to see real JIDs", node.position
                )
            return Query.term_query(SCHEMA, "jid", node.value)
        if "@" in node.value:
            return Query.term_query(SCHEMA, "room", node.value)
        self.fixed = False
        rooms = self.rooms_with_local(node.value)
        return Query.term_set_query(SCHEMA, "room", rooms) if rooms else Query.empty_query()


def required_stems(node: Node) -> set[str]:
    """Stems every match of ``node`` holds in ``body`` outside compliance scope (there text matches
    nothing else): the fewest documents that hold one bound its matches, for the price of a
    term-dictionary look-up each."""
    if isinstance(node, (Word, Phrase)):
        return {token.text for token in STEM_ANALYZER.pre_tokenize(node.text).tokens}
    if isinstance(node, And):
        return set().union(*(required_stems(child) for child in node.children))
    return set()


def _any(queries: list[Query]) -> Query:
    return queries[0] if len(queries) == 1 else Query.boolean_query([(Occur.Should, q) for q in queries])
