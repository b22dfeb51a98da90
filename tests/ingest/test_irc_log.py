"""IRC-style log import: each line form, dates, ordering and idempotent re-import."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from archive.codec import idempotency_key
from archive.events import Capture, MessagePosted, NickChanged, OccupantJoined, OccupantLeft
from ingest.irc_log import parse_irc_log

ROOM = "irc@conference.example.org"
DAY = date(2024, 5, 2)
NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)


def parse(text: str, **options):
    return list(parse_irc_log(text.splitlines(), ROOM, DAY, recorded_at=NOW, **options))


def at(hour: int, minute: int, second: int = 0, micro: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=timezone.utc)


def test_message_and_action_lines():
    events = parse("[14:02] <alice> hello there\n[14:03:09] * bob waves at alice")
    assert events == [
        MessagePosted(room=ROOM, occurred_at=at(14, 2), recorded_at=NOW, capture=Capture.IMPORT,
                      nick="alice", body="hello there"),
        MessagePosted(room=ROOM, occurred_at=at(14, 3, 9), recorded_at=NOW, capture=Capture.IMPORT,
                      nick="bob", body="/me waves at alice"),
    ]


def test_op_and_voice_prefixes_are_not_part_of_the_nick():
    assert [e.nick for e in parse("[10:00] <@op> a\n[10:00] <+voiced> b")] == ["op", "voiced"]


def test_join_leave_and_nick_lines_take_the_last_stamp():
    events = parse(
        "[09:00] <carol> morning\n"
        "=== dave joined\n"
        "[09:05] === dave is now known as david\n"
        "=== david left (Quit: gone home)\n"
        "=== erin has joined #chan\n"
    )
    assert [type(e) for e in events] == [MessagePosted, OccupantJoined, NickChanged, OccupantLeft, OccupantJoined]
    joined, renamed, left = events[1], events[2], events[3]
    assert (joined.nick, joined.occurred_at) == ("dave", at(9, 0, micro=1))
    assert (renamed.old_nick, renamed.new_nick, renamed.occurred_at) == ("dave", "david", at(9, 5))
    assert (left.nick, left.status) == ("david", "Quit: gone home")
    assert events[4].nick == "erin"


def test_lines_before_the_first_stamp_and_unknown_lines_are_skipped():
    assert parse("=== early joined\nrandom noise\n[25:00] <x> bad hour\n[10:00] <a> ok\n-!- mode change") == [
        MessagePosted(room=ROOM, occurred_at=at(10, 0), recorded_at=NOW, capture=Capture.IMPORT, nick="a", body="ok")
    ]


def test_clock_going_backwards_moves_to_the_next_day():
    events = parse("[23:59] <a> late\n[00:01] <a> early")
    assert events[1].occurred_at == at(0, 1, day=DAY + timedelta(days=1))


def test_day_changed_and_log_opened_lines_set_the_date():
    events = parse(
        "--- Log opened Fri May 10 08:00:00 2024\n[08:01] <a> one\n"
        "--- Day changed Sat May 11 2024\n[07:00] <a> two"
    )
    assert [e.occurred_at for e in events] == [at(8, 1, day=date(2024, 5, 10)), at(7, 0, day=date(2024, 5, 11))]


def test_times_are_read_in_the_given_zone():
    plus_two = timezone(timedelta(hours=2))
    assert parse("[14:00] <a> hi", tz=plus_two)[0].occurred_at == at(12, 0)


def test_identical_lines_under_one_stamp_stay_distinct_and_ordered():
    events = parse("[10:00] <a> +1\n[10:00] <a> +1\n=== a left\n=== a joined\n=== a left")
    keys = [idempotency_key(e) for e in events]
    assert len(set(keys)) == len(events)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)


def test_reimport_gives_the_same_keys():
    text = "[10:00] <a> hello\n=== b joined\n[10:01] <b> hi a\n[10:01] <b> hi a"
    first = [idempotency_key(e) for e in parse(text)]
    again = [idempotency_key(e) for e in parse_irc_log(text.splitlines(), ROOM, DAY, recorded_at=NOW + timedelta(days=3))]
    assert first == again


@pytest.mark.parametrize("line", ["[10:00] <a>", "[10:00] <a> "])
def test_empty_messages_are_skipped(line):
    assert parse(line) == []
