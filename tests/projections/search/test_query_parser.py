"""The query language parser: syntax trees for every form, errors with positions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive.errors import InvalidQueryError
from projections.search import query
from projections.search.query import (
    And,
    Everything,
    FieldIs,
    Flag,
    Fuzzy,
    Not,
    Or,
    Phrase,
    Prefix,
    TimeRange,
    Word,
    parse,
)
from projections.search.translate import required_stems

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=timezone.utc)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text, tree",
    [
        ("", Everything()),
        ("   ", Everything()),
        ("deploy", Word("deploy")),
        ("deploy failed", And((Word("deploy"), Word("failed")))),
        ("deploy AND failed", And((Word("deploy"), Word("failed")))),
        ("deploy and failed", And((Word("deploy"), Word("and"), Word("failed")))),
        ('"deploy failed"', Phrase("deploy failed")),
        ("a OR b", Or((Word("a"), Word("b")))),
        # OR binds tighter than the implicit AND.
        ("a b OR c", And((Word("a"), Or((Word("b"), Word("c")))))),
        ("a OR b c", And((Or((Word("a"), Word("b"))), Word("c")))),
        ("(a b) OR c", Or((And((Word("a"), Word("b"))), Word("c")))),
        ("-spam", Not(Word("spam"))),
        ("NOT spam eggs", And((Not(Word("spam")), Word("eggs")))),
        ("NOT NOT spam", Not(Not(Word("spam")))),
        ('-"bad phrase"', Not(Phrase("bad phrase"))),
        ("-(a OR b)", Not(Or((Word("a"), Word("b"))))),
        ("a - b", And((Word("a"), Word("-"), Word("b")))),
        ("deplo*", Prefix("deplo")),
        ("deplo**", Prefix("deplo")),
        ("kubernets~", Fuzzy("kubernets", 1)),
        ("kubernets~2", Fuzzy("kubernets", 2)),
        ("room:Dev@Conference.example.org", FieldIs("room", "dev@conference.example.org")),
        ("room:dev", FieldIs("room", "dev")),
        ("from:Alice", FieldIs("from", "alice")),
        ('from:"Ann Lee"', FieldIs("from", "ann lee")),
        (r'from:"the \"Boss\"" x', And((FieldIs("from", 'the "boss"'), Word("x")))),
        (r'"C:\Users\\" x', And((Phrase("C:\\Users\\"), Word("x")))),
        ("FROM:bob", FieldIs("from", "bob")),
        ("jid:Ann@Example.org/phone", FieldIs("jid", "ann@example.org", 0)),
        ("-room:dev", Not(FieldIs("room", "dev"))),
        ("after:2024-05-01", TimeRange(start=utc(2024, 5, 1))),
        ("before:2024-05-01T12:30:00Z", TimeRange(end=utc(2024, 5, 1, 12, 30))),
        ("after:-7d", TimeRange(start=utc(2024, 5, 3, 12))),
        ("before:-2h", TimeRange(end=utc(2024, 5, 10, 10))),
        ("on:2024-05-01", TimeRange(utc(2024, 5, 1), utc(2024, 5, 2))),
        ("on:-1d", TimeRange(utc(2024, 5, 9), utc(2024, 5, 10))),
        ("is:edited", Flag("edited", 0)),
        ("x is:Retracted", And((Word("x"), Flag("retracted", 2)))),
        # Unknown prefixes with a colon are words (URLs, times of day).
        ("https://example.org 12:30", And((Word("https://example.org"), Word("12:30")))),
    ],
)
def test_parses(text, tree):
    assert parse(text, now=NOW) == tree


@pytest.mark.parametrize(
    "text, position, words",
    [
        ('deploy "failed', 7, "unterminated quote"),
        ('from:"Ann', 5, "unterminated quote"),
        ("a AND", 2, "AND at position 2 needs a term after it"),
        ("AND a", 0, "needs a term before it"),
        ("a OR", 2, "OR at position 2 needs a term after it"),
        ("a OR OR b", 2, "OR at position 2"),
        ("OR a", 0, "needs a term before it"),
        ("NOT", 0, "NOT at position 0 needs a term after it"),
        ("a (b c", 2, "unclosed ("),
        ("a b)", 3, "unmatched )"),
        ("a () b", 2, "empty parentheses"),
        ("room: lobby", 5, "room: needs a value"),
        ("x from:", 7, "from: needs a value"),
        ("is:starred", 3, "use is:edited or is:retracted"),
        ("after:yesterday", 6, "is not a time"),
        ("before:2024-13-01", 7, "is not a time"),
        ("on:2024-02-30", 3, "is not a day"),
        ("*", 0, "needs letters before it"),
        ("hello ~", 6, "needs a word before it"),
        ("color~3", 6, "must be 1 or 2"),
        ("-", None, None),  # a lone dash is punctuation, not an error
    ],
)
def test_syntax_errors_say_where(text, position, words):
    if position is None:
        parse(text, now=NOW)
        return
    with pytest.raises(InvalidQueryError) as caught:
        parse(text, now=NOW)
    assert caught.value.position == position
    assert words in str(caught.value)
    assert f"position {position}" in str(caught.value)


@given(st.text(alphabet='ab \\"()-:*~', max_size=12))
def test_any_value_quoted_reads_back_as_itself(value):
    """A nick with a " could not be written in a query (the search page's people filter gave a query error about
    text nobody typed): inside quotes \\" is a quote and \\\\ a backslash."""
    text = f"from:{query.quoted(value)}"
    if not value.strip():
        with pytest.raises(InvalidQueryError):
            parse(text, now=NOW)
        return
    assert parse(text, now=NOW) == FieldIs("from", value.strip().lower())
    assert parse(f"x {query.quoted(value)} y", now=NOW) == And((Word("x"), Phrase(value), Word("y")))


@given(st.lists(st.sampled_from(["deploy", "a-b", "AND", "OR", "NOT", "x*", "y~", "-z", "room:r", '"p q"', "(", ")",
                                 "é", ":", "ünï", "1", " ", "\t", "\n", "\u00a0", "\u2003", "--", "~2", "*"]), max_size=8))
def test_plain_words_parse_as_any_query_does(pieces):
    text = "".join(pieces)
    assert _outcome(query.parse, text) == _outcome(lambda t: query._parse_tokens(t, None), text)


def _outcome(parser, text: str):
    try:
        return parser(text)
    except InvalidQueryError as e:
        return str(e), e.position


def test_plain_words_beyond_the_term_limit_are_refused():
    with pytest.raises(InvalidQueryError, match="more than"):
        query.parse("word " * (query.MAX_TERMS + 1))


@pytest.mark.parametrize(
    "text, stems",
    [
        ("deploy", {"deploy"}),
        ("deployed foxes", {"deploy", "fox"}),
        ('"lazy cats" room:lobby', {"lazi", "cat"}),
        ("deploy -fox", {"deploy"}),
        ("deploy OR fox", set()),
        ("deploy*", set()),
        ("!!!", set()),
    ],
)
def test_required_stems_are_those_every_match_holds(text, stems):
    assert required_stems(parse(text)) == stems
