"""What people type for a time (`archive.times.parse_time`): ISO 8601, relative forms, and `now`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from archive.errors import InvalidQueryError
from archive.times import parse_time
from tests.factories import T0


@pytest.mark.parametrize("text", ["now", " NOW ", "Now"])
def test_now_is_the_moment_asked(text):
    """`--to now`, `to=now`: the README's ranges run up to now, and the word was refused."""
    assert parse_time(text, now=T0) == T0


def test_relative_forms_and_the_hint_name_now_too():
    assert parse_time("-2h", now=T0) == T0 - timedelta(hours=2)
    with pytest.raises(InvalidQueryError, match="now"):
        parse_time("yesterday", now=T0)
