"""Ended sign-in sessions in the store's database: seen by every process, cached at most as long as a
token lookup, kept only until the session would have expired anyway."""

from __future__ import annotations

import time

from query_api.sessions import EndedSessions, open_ended_sessions
from query_api.tokens import open_database


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ended_by_one_process_is_refused_by_another_within_the_cache_bound(store_url):
    clock = Clock()
    ending, other = open_ended_sessions(store_url), EndedSessions(open_database(store_url), cache_seconds=5, clock=clock)
    try:
        assert not other.ended("s1") and not ending.ended("s1")  # both now cache "still going"
        ending.end("s1", until=time.time() + 60)
        assert ending.ended("s1")  # at once where it was ended
        clock.now += 4.9
        assert not other.ended("s1")  # another process may go on trusting its cached answer this long...
        clock.now += 0.1
        assert other.ended("s1")  # ...and no longer
        assert not other.ended("s2")
    finally:
        ending.close()
        other.close()


def test_ended_sessions_are_forgotten_once_they_would_have_expired(store_url):
    sessions = open_ended_sessions(store_url, cache_seconds=0)
    try:
        sessions.end("expired", until=time.time() - 1)
        sessions.end("live", until=time.time() + 60)
        sessions.end("live", until=time.time() + 60)  # signing out twice (two tabs) is no error
        database = open_database(store_url)
        try:
            assert [row[0] for row in database.query("SELECT id FROM ended_sessions")] == ["live"]
        finally:
            database.close()
    finally:
        sessions.close()
