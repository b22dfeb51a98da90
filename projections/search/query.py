"""The search query language: a pure parser from text to a small syntax tree.

Grammar (``OR`` binds tighter than the implicit ``AND``, as in mail search)::

    query  := and? EOF
    and    := or ( ["AND"] or )*
    or     := unary ( "OR" unary )*
    unary  := "NOT" unary | "-" atom | atom
    atom   := "(" and ")" | "word" | word | prefix* | word~ | word~2 | name:value

``AND``/``OR``/``NOT`` are operators only in capitals. Filters: ``room:``,
``from:`` (nick), ``jid:``, ``after:`` (at or after), ``before:`` (strictly
before), ``on:`` (that UTC day), ``is:edited``, ``is:retracted``; a value may be
quoted (``from:"Ann Lee"``), ``\\"`` and ``\\\\`` standing for a quote and a backslash inside quotes. Anything else with a colon is an ordinary word.
Errors raise ``InvalidQueryError`` whose ``position`` is the 0-based offset of
the fault in the query text.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import msgspec

from archive.errors import InvalidQueryError
from archive.times import parse_day, parse_time, utcnow


class Word(msgspec.Struct, frozen=True):
    text: str


class Phrase(msgspec.Struct, frozen=True):
    text: str


class Prefix(msgspec.Struct, frozen=True):
    text: str


class Fuzzy(msgspec.Struct, frozen=True):
    text: str
    distance: int = 1


class FieldIs(msgspec.Struct, frozen=True):
    """``room:``, ``from:`` or ``jid:`` (field named as in the query), value normalised."""

    field: str
    value: str
    position: int = 0


class TimeRange(msgspec.Struct, frozen=True):
    """occurred_at in [start, end); either end open."""

    start: datetime | None = None
    end: datetime | None = None


class Flag(msgspec.Struct, frozen=True):
    name: str  # "edited" | "retracted"
    position: int = 0  # where it was written, for "is:retracted needs compliance scope"


class Not(msgspec.Struct, frozen=True):
    child: Node


class And(msgspec.Struct, frozen=True):
    children: tuple[Node, ...]


class Or(msgspec.Struct, frozen=True):
    children: tuple[Node, ...]


class Everything(msgspec.Struct, frozen=True):
    """The empty query: every message in scope."""


Node = Word | Phrase | Prefix | Fuzzy | FieldIs | TimeRange | Flag | Not | And | Or | Everything

FIELDS = ("room", "from", "jid", "after", "before", "on", "is")
FLAGS = ("edited", "retracted")
_FIELD_PREFIX = re.compile(r"^(room|from|jid|after|before|on|is):", re.IGNORECASE)
_FUZZY = re.compile(r"^(.*?)~(\d*)$", re.DOTALL)
_BREAK = set('()"') | {" ", "\t", "\n", "\r"}
# A query of plain words (no operator, field, phrase, parenthesis, negation, prefix or fuzzy mark, no
# whitespace but the four that separate words): most queries. Its tree is an And of its words, made
# without tokenizing it character by character (a one-word query's parse 8.7 -> 0.86 us).
_WORD = r"[^\s()\"*~:\-][^\s()\"*~:]*"
_PLAIN_WORDS = re.compile(rf"[ \t\n\r]*{_WORD}(?:[ \t\n\r]+{_WORD})*[ \t\n\r]*").fullmatch
_OPERATORS = frozenset(("AND", "OR", "NOT"))
# Bounded work per query, for every caller (API, pages, CLI): a prefix or fuzzy term expands to
# many index terms, each nesting level is a level of recursion here and in the translation.
MAX_QUERY_CHARS = 4096
MAX_TERMS = 256
MAX_EXPANDING_TERMS = 16
MAX_NESTING = 32


class _Token(msgspec.Struct, frozen=True):
    kind: str  # "word" "phrase" "lparen" "rparen" "and" "or" "not" "neg" "field"
    text: str
    pos: int
    name: str = ""  # field name for "field"
    value_pos: int = 0


def parse(text: str, *, now: datetime | None = None) -> Node:
    """The syntax tree of a query; relative times (``-7d``) count back from ``now``.

    Longer queries than ``MAX_QUERY_CHARS``, more than ``MAX_TERMS`` terms or
    ``MAX_EXPANDING_TERMS`` prefix and fuzzy terms, and nesting (parentheses,
    NOT) deeper than ``MAX_NESTING`` raise ``InvalidQueryError``.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQueryError(f"the query is longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
    if _PLAIN_WORDS(text):
        words = text.split()
        if len(words) <= MAX_TERMS and _OPERATORS.isdisjoint(words):
            return Word(words[0]) if len(words) == 1 else And(tuple(map(Word, words)))
    return _parse_tokens(text, now)


def _parse_tokens(text: str, now: datetime | None) -> Node:
    """``parse`` for any query, token by token."""
    tokens = _tokenize(text)
    terms = [t for t in tokens if t.kind in ("word", "phrase", "field")]
    if len(terms) > MAX_TERMS:
        raise InvalidQueryError(f"the query has more than {MAX_TERMS} terms", terms[MAX_TERMS].pos)
    expanding = [t for t in terms if t.kind == "word" and (t.text.endswith("*") or _FUZZY.match(t.text))]
    if len(expanding) > MAX_EXPANDING_TERMS:
        where = expanding[MAX_EXPANDING_TERMS].pos
        raise InvalidQueryError(f"the query has more than {MAX_EXPANDING_TERMS} prefix or fuzzy terms", where)
    parser = _Parser(tokens, len(text), now or utcnow())
    return parser.parse()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(_Token("lparen", ch, i))
            i += 1
        elif ch == ")":
            tokens.append(_Token("rparen", ch, i))
            i += 1
        elif ch == '"':
            value, i2 = _quoted(text, i)
            tokens.append(_Token("phrase", value, i))
            i = i2
        elif ch == "-" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] != "-":
            tokens.append(_Token("neg", ch, i))
            i += 1
        else:
            start = i
            while i < n and text[i] not in _BREAK:
                i += 1
            word = text[start:i]
            field = _FIELD_PREFIX.match(word)
            if field:
                name = field.group(1).lower()
                value_pos = start + len(field.group(0))
                if word == field.group(0) and i < n and text[i] == '"':
                    value, i = _quoted(text, i)
                else:
                    value = word[len(field.group(0)) :]
                if not value.strip():
                    raise InvalidQueryError(f"{name}: needs a value at position {value_pos}", value_pos)
                tokens.append(_Token("field", value, start, name=name, value_pos=value_pos))
            elif word in ("AND", "OR", "NOT"):
                tokens.append(_Token(word.lower(), word, start))
            else:
                tokens.append(_Token("word", word, start))
    return tokens


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPED = re.compile(r'\\(["\\])')


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The value of the quoted text at ``start`` and where it ends: ``\\"`` is a quote inside it, ``\\\\`` a
    backslash (any other backslash is itself), so that any nick can be written (``from:"the \\"boss\\""``)."""
    match = _QUOTED.match(text, start)
    if match is None:
        raise InvalidQueryError(f'unterminated quote at position {start}: add the closing "', start)
    return _ESCAPED.sub(r"\1", match.group(1)), match.end()


def quoted(value: str) -> str:
    """``value`` as a quoted value of the query language, whatever it holds (what ``_quoted`` reads back)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    def __init__(self, tokens: list[_Token], length: int, now: datetime):
        self.tokens = tokens
        self.length = length
        self.now = now
        self.i = 0
        self.depth = 0

    def nested(self, token: _Token) -> None:
        """One level deeper (a parenthesis or a NOT); the caller leaves it again."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise InvalidQueryError(f"the query nests deeper than {MAX_NESTING} levels at position {token.pos}", token.pos)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            return Everything()
        node = self.parse_and()
        token = self.peek()
        if token is not None:  # only a stray ")" stops parse_and early
            raise InvalidQueryError(f"unmatched ) at position {token.pos}", token.pos)
        return node

    def parse_and(self) -> Node:
        children = [self.parse_or()]
        while True:
            token = self.peek()
            if token is None or token.kind == "rparen":
                break
            if token.kind == "and":
                self.take()
                nxt = self.peek()
                if nxt is None or nxt.kind in ("and", "or", "rparen"):
                    raise InvalidQueryError(f"AND at position {token.pos} needs a term after it", token.pos)
            children.append(self.parse_or())
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_or(self) -> Node:
        children = [self.parse_unary()]
        while (token := self.peek()) is not None and token.kind == "or":
            self.take()
            nxt = self.peek()
            if nxt is None or nxt.kind in ("and", "or", "rparen"):
                raise InvalidQueryError(f"OR at position {token.pos} needs a term after it", token.pos)
            children.append(self.parse_unary())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_unary(self) -> Node:
        token = self.peek()
        if token is None:
            raise InvalidQueryError(f"the query ends where a term is expected (position {self.length})", self.length)
        if token.kind in ("not", "neg"):
            self.take()
            if token.kind == "not" and self.peek() is None:
                raise InvalidQueryError(f"NOT at position {token.pos} needs a term after it", token.pos)
            self.nested(token)
            node = Not(self.parse_unary() if token.kind == "not" else self.parse_atom())
            self.depth -= 1
            return node
        return self.parse_atom()

    def parse_atom(self) -> Node:
        token = self.peek()
        if token is None:
            raise InvalidQueryError(f"the query ends where a term is expected (position {self.length})", self.length)
        if token.kind in ("and", "or"):
            raise InvalidQueryError(
                f"{token.text} at position {token.pos} needs a term before it", token.pos
            )
        if token.kind == "rparen":
            raise InvalidQueryError(f"unexpected ) at position {token.pos}", token.pos)
        self.take()
        if token.kind == "lparen":
            if (nxt := self.peek()) is not None and nxt.kind == "rparen":
                raise InvalidQueryError(f"empty parentheses at position {token.pos}", token.pos)
            self.nested(token)
            node = self.parse_and()
            self.depth -= 1
            close = self.peek()
            if close is None or close.kind != "rparen":
                raise InvalidQueryError(f"unclosed ( at position {token.pos}", token.pos)
            self.take()
            return node
        if token.kind == "phrase":
            return Phrase(token.text)
        if token.kind == "field":
            return self.field(token)
        return _word(token)

    def field(self, token: _Token) -> Node:
        name, value, pos = token.name, token.text.strip(), token.value_pos
        if name == "room":
            return FieldIs("room", value.lower())
        if name == "from":
            return FieldIs("from", value.lower())
        if name == "jid":
            return FieldIs("jid", value.split("/", 1)[0].lower(), token.pos)
        if name == "is":
            flag = value.lower()
            if flag not in FLAGS:
                raise InvalidQueryError(
                    f"unknown is:{value} at position {pos}: use is:edited or is:retracted", pos
                )
            return Flag(flag, token.pos)
        try:
            if name == "on":
                if len(value) == 10 and value[4:5] == "-":
                    start, end = parse_day(value)
                else:
                    start, _ = parse_day(parse_time(value, now=self.now).date().isoformat())
                    end = start + timedelta(days=1)
                return TimeRange(start, end)
            moment = parse_time(value, now=self.now)
        except InvalidQueryError as e:
            raise InvalidQueryError(f"{name}: at position {pos}: {e}", pos) from None
        return TimeRange(start=moment) if name == "after" else TimeRange(end=moment)


def _word(token: _Token) -> Node:
    text = token.text
    if text.endswith("*"):
        stem = text.rstrip("*")
        if not stem:
            raise InvalidQueryError(f"* at position {token.pos} needs letters before it (e.g. deploy*)", token.pos)
        return Prefix(stem)
    fuzzy = _FUZZY.match(text)
    if fuzzy:
        stem, digits = fuzzy.groups()
        if not stem:
            raise InvalidQueryError(f"~ at position {token.pos} needs a word before it (e.g. kubernetes~)", token.pos)
        distance = int(digits) if digits else 1
        if not 1 <= distance <= 2:
            pos = token.pos + len(stem) + 1
            raise InvalidQueryError(f"fuzzy distance at position {pos} must be 1 or 2", pos)
        return Fuzzy(stem, distance)
    return Word(text)
