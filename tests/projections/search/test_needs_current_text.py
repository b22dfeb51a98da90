"""Which queries match only through current text (``body``), and so need no exclusion of
retracted messages, whose text the index keeps out of ``body``."""

from __future__ import annotations

import pytest

from projections.search.query import parse
from projections.search.translate import Translator


@pytest.mark.parametrize(("text", "needs"), [
    ("word", True), ('"two words"', True), ("wor*", True), ("word~", True), ("word from:ann", True),
    ("word -other", True), ("word OR other", True), ("(word OR other) room:lobby@x", True), ("word !!!", True),
    ("", False), ("!!!", False), ("from:ann", False), ("-word", False), ("word OR from:ann", False),
    ("word OR -other", False), ("is:edited", False), ("after:2024-01-01", False), ("NOT (word other)", False),
    ("word OR !!!", True),
])  # fmt: skip
def test_needs_current_text(text, needs):
    translator = Translator(compliance=False, rooms_with_local=lambda local: [])
    translator.translate(parse(text))
    assert translator.needs_current_text is needs


def test_in_compliance_scope_text_also_matches_history():
    translator = Translator(compliance=True, rooms_with_local=lambda local: [])
    translator.translate(parse("word"))
    assert translator.needs_current_text is False
