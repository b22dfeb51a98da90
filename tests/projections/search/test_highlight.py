"""Snippet marks: the shortcut for ASCII text marks exactly the tokens the body analyzer's own
tokens would (it relies on the analyzer splitting ASCII at anything but letters and digits, and on
English stemming keeping a word's first letter and never lengthening a word)."""

from __future__ import annotations

from html import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.search.highlight import _LOWERS_TO_ASCII, Marks, _window, analyzed_matches, marks_for
from projections.search.schema import STEM_ANALYZER, WORD_ANALYZER
from projections.search.translate import Highlights

WORDS = [
    "Deploy", "deployed", "deploying", "deployment", "lazy", "LAZIES", "dying", "skies", "skis", "news",
    "generously", "ability", "able", "agreed", "feed", "hoping", "hopping", "relational", "organization",
    "1st", "2024", "x" * 39, "x" * 40, "x" * 41, "e-mail", "don't", "can_t", "idly", "early", "only", "Atlas",
    "la", "sky", "dye", "new", "nee", "ab", "d",
]
SEPARATORS = [" ", "  ", ", ", ". ", "-", "'", "_", "!", "\t", "/"]

texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=12).map(
    lambda parts: "".join(word + sep for word, sep in parts)
)


@settings(max_examples=300, deadline=None)
@given(text=texts, asked=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), prefix=st.booleans())
def test_ascii_marks_are_those_of_the_analyzer(text, asked, prefix):
    stems = {stem for word in asked for stem in STEM_ANALYZER.analyze(word)}
    highlights = Highlights(stems=set() if prefix else stems, prefixes={s[:3] for s in stems} if prefix else set())
    expected = analyzed_matches(text, highlights.stems, tuple(highlights.prefixes), set())
    assert Marks(highlights).matches(text) == expected


def test_a_snippet_marks_every_form_of_the_word():
    highlights = Highlights(stems={"deploy"})
    assert Marks(highlights).snippet("Deployed it; deploying <now>") == (
        "<mark>Deployed</mark> it; <mark>deploying</mark> &lt;now&gt;"
    )


@settings(max_examples=300, deadline=None)
@given(text=texts, markup=st.lists(st.sampled_from(["", "&", "<", ">", '"', "'", "&amp;"]), max_size=3))
def test_a_snippet_is_the_escaped_text_with_marks(text, markup):
    text = "".join(markup) + text + "".join(reversed(markup))
    snippet = Marks(Highlights(stems={"deploy", "news"})).snippet(text, max_chars=len(text))
    assert snippet.replace("<mark>", "").replace("</mark>", "") == escape(text)


@settings(max_examples=300, deadline=None)
@given(text=texts, asked=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), prefix=st.booleans())
def test_a_whole_line_snippet_marks_the_analyzers_tokens(text, asked, prefix):
    # Lines with nothing to escape are marked in one pass, the others piece by piece: the same snippet.
    stems = {stem for word in asked for stem in STEM_ANALYZER.analyze(word)}
    highlights = Highlights(stems=set() if prefix else stems, prefixes={s[:3] for s in stems} if prefix else set())
    expected, at = [], 0
    for lo, hi in analyzed_matches(text, highlights.stems, tuple(highlights.prefixes), set()):
        expected += [escape(text[at:lo]), f"<mark>{escape(text[lo:hi])}</mark>"]
        at = hi
    expected.append(escape(text[at:]))
    assert Marks(highlights).snippet(text, max_chars=len(text)) == "".join(expected)


# Letters, digits and marks past ASCII next to ASCII words, and the two characters that lowercase to ASCII.
FOREIGN = ["café", "naïve", "Привет", "こんにちは", "İstanbul", "\u212aeep", "Deployé", "éDeploy", "x\u0345", "🙏", "ü"]
mixed_texts = st.lists(
    st.tuples(st.sampled_from(WORDS + FOREIGN), st.sampled_from(SEPARATORS + ["", "\u00a0", "—", "🙏", "\u0301"])),
    max_size=12,
).map(lambda parts: "".join(word + sep for word, sep in parts))


@settings(max_examples=500, deadline=None)
@given(text=mixed_texts, asked=st.lists(st.sampled_from(WORDS + ["keep", "deploy", "istanbul"]), min_size=1, max_size=3),
       prefix=st.booleans())
def test_marks_in_text_past_ascii_are_those_of_the_analyzer(text, asked, prefix):
    stems = {stem for word in asked for stem in STEM_ANALYZER.analyze(word)}
    highlights = Highlights(stems=set() if prefix else stems, prefixes={s[:2] for s in stems} if prefix else set())
    expected = analyzed_matches(text, highlights.stems, tuple(highlights.prefixes), set())
    assert Marks(highlights).matches(text) == expected


def test_only_the_known_characters_past_ascii_lowercase_to_ascii():
    """Lowercased as the index lowercases (tantivy's filter, not Python's ``str.lower``), so that a
    tantivy or Unicode upgrade that lowers another character to ASCII fails here."""
    code_points = (c for c in map(chr, range(128, 0x110000)) if not 0xD800 <= ord(c) < 0xE000)
    lowering = {c for c in code_points if any(x.isascii() for token in WORD_ANALYZER.analyze(c) for x in token)}
    assert {c for c in lowering if _LOWERS_TO_ASCII(c)} == lowering


def test_kept_marks_are_those_of_the_same_highlights_only():
    """``marks_for`` keeps a query's marks across searches: the same stems, prefixes and fuzzy terms
    share them; any other query gets its own, and a kept one marks as a fresh one does, again and again."""
    text = "Deployed the news; deploying newer things, news again"
    words = Highlights(stems={"deploy", "news"})
    assert marks_for(words) is marks_for(Highlights(stems={"news", "deploy"}))
    others = [Highlights(stems={"deploy"}), Highlights(stems={"deploy", "news"}, prefixes={"new"}),
              Highlights(stems={"deploy", "news"}, fuzzy={("news", 1)})]
    assert len({id(marks_for(h)) for h in [words, *others]}) == 4
    for highlights in [words, *others] * 2:
        assert marks_for(highlights).snippet(text) == Marks(highlights).snippet(text)


def test_what_kept_marks_keep_is_bounded():
    """A kept query's decided words are bounded, and words too long to be indexed are not kept:
    a stream of crafted texts cannot grow a serving process without end."""
    from projections.search import highlight

    marks = Marks(Highlights(stems={"x"}))
    for i in range(3 * highlight._SEEN_KEPT):
        assert marks.snippet(f"x{i} x{'y' * 60}{i}") == f"x{i} x{'y' * 60}{i}"
        assert len(marks._seen) <= highlight._SEEN_KEPT
    assert not any(len(word) >= highlight.MAX_TOKEN_BYTES for word in marks._seen)
    kept = [marks_for(Highlights(stems={f"w{i}"})) for i in range(highlight._MARKS_KEPT + 5)]
    assert len(highlight._marks) <= highlight._MARKS_KEPT and kept[-1] is marks_for(Highlights(stems={f"w{highlight._MARKS_KEPT + 4}"}))


def _analyzers_snippet(text: str, highlights: Highlights, max_chars: int) -> str:
    """The snippet piece by piece from the analyzer's own tokens: the window placed by the first
    match, every match in it marked (one cut by the window's edge, its part in the window)."""
    spans = analyzed_matches(text, highlights.stems, tuple(highlights.prefixes), highlights.fuzzy)
    start, end = _window(text, spans[0][0] if spans else 0, max_chars)
    out, at = ["…" if start else ""], start
    for lo, hi in spans:
        lo, hi = max(lo, start), min(hi, end)
        if lo < hi:
            out += [escape(text[at:lo]), f"<mark>{escape(text[lo:hi])}</mark>"]
            at = hi
    out += [escape(text[at:end]), "…" if end < len(text) else ""]
    return "".join(out)


MARKUP = ["&", "<", ">", '"', "'", "&amp;", "&#x27;", "&#", "#", "mark", "Marks", "<mark>", "</mark>"]
marked_texts = st.lists(
    st.tuples(st.sampled_from(WORDS + FOREIGN + MARKUP), st.sampled_from(SEPARATORS + ["", "🙏", "&", "'"])),
    max_size=16,
).map(lambda parts: "".join(word + sep for word, sep in parts))


@settings(max_examples=600, deadline=None)
@given(text=st.one_of(texts, mixed_texts, marked_texts),
       asked=st.lists(st.sampled_from(WORDS + ["keep", "amp", "x27", "quot", "lt", "gt", "mark", "ark"]), min_size=1, max_size=3),
       prefix=st.booleans(), max_chars=st.sampled_from([240, 40, 25, 12]))
def test_a_snippet_is_the_analyzers_marks_in_its_window(text, asked, prefix, max_chars):
    # Whole lines, lines past ASCII and long lines' windows are marked in one pass where they can be:
    # the same snippet as piece by piece from the analyzer's tokens, also next to markup and entities.
    stems = {stem for word in asked for stem in STEM_ANALYZER.analyze(word)}
    highlights = Highlights(stems=set() if prefix else stems, prefixes={s[:2] for s in stems} if prefix else set())
    assert Marks(highlights).snippet(text, max_chars) == _analyzers_snippet(text, highlights, max_chars)
