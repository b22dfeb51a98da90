"""Catching up reads the log ahead (``projections.readahead``): in order, from where the
projection is after a reset, and a failed read is an error, not a hang."""

from __future__ import annotations

import threading
import time

import pytest

from archive.errors import StoreError, StoreUnavailable
from projections.follower import LogFollower, ProjectionReset
from projections.readahead import PAGES_AHEAD, ReadAhead
from tests.factories import message


class Recording:
    name = "recording"

    def __init__(self, reset_at: int | None = None, reset_to: int = 0):
        self.applied: list[int] = []
        self.commits: list[int] = []
        self._position = 0
        self._reset_at, self._reset_to = reset_at, reset_to

    def position(self):
        return self._position

    def apply(self, records):
        self.applied += [record.position for record in records]

    def commit(self, position):
        if position == self._reset_at:
            self._reset_at = None
            self._position = self._reset_to
            raise ProjectionReset("replaced by a rebuild")
        self.commits.append(position)
        self._position = position

    def discard(self):
        pass


def test_catching_up_applies_every_page_in_order(event_store):
    event_store.append([message(i, f"m{i}") for i in range(11)])
    projection = Recording()
    assert LogFollower(event_store, projection, commit_interval=3600, page_size=3, max_pending=6).catch_up() == 11
    assert projection.applied == list(range(1, 12))
    assert projection.commits == [6, 11]


def test_after_a_reset_catching_up_reads_on_from_the_projections_position(event_store):
    event_store.append([message(i, f"m{i}") for i in range(10)])
    projection = Recording(reset_at=6, reset_to=2)
    LogFollower(event_store, projection, commit_interval=3600, page_size=2, max_pending=6).catch_up()
    assert projection.applied == [1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 7, 8, 9, 10]
    assert projection.commits == [8, 10]


def test_a_reset_found_by_the_final_commit_is_caught_up_too(event_store):
    # The last commit is where a rebuild swapped in elsewhere is most often found: returning there
    # would report a position the projection never reached.
    event_store.append([message(i, f"m{i}") for i in range(10)])
    projection = Recording(reset_at=10, reset_to=4)
    assert LogFollower(event_store, projection, commit_interval=3600, page_size=3).catch_up() == 10
    assert projection.applied == list(range(1, 11)) + list(range(5, 11))
    assert projection.commits == [10] and projection.position() == 10


def test_a_projection_reset_to_the_same_place_again_and_again_is_an_error_not_an_endless_catch_up(event_store):
    event_store.append([message(i, f"m{i}") for i in range(5)])

    class Lost(Recording):
        def commit(self, position):
            self.commits.append(position)
            assert len(self.commits) < 10, "caught up again and again"
            self._position = 0
            raise ProjectionReset("its generation row is gone")

    with pytest.raises(StoreError, match="reset to position 0 twice"):
        LogFollower(event_store, Lost(), commit_interval=3600, page_size=2).catch_up()
    assert not readers()


def test_a_failed_read_ahead_is_raised_by_catch_up_and_its_thread_ends(event_store, monkeypatch):
    event_store.append([message(i, f"m{i}") for i in range(10)])
    read = event_store.read_log_page
    calls = []

    def failing(after, limit):
        calls.append(after)
        if len(calls) == 3:
            raise StoreUnavailable("the log went away")
        return read(after, limit)

    monkeypatch.setattr(event_store, "read_log_page", failing)
    projection = Recording()
    with pytest.raises(StoreUnavailable, match="went away"):
        LogFollower(event_store, projection, commit_interval=3600, page_size=2).catch_up()
    assert projection.applied == [1, 2, 3, 4]
    assert not [t for t in threading.enumerate() if t.name == "log read-ahead"]


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "log read-ahead"]


def test_a_read_ahead_interrupted_by_a_base_exception_is_raised_not_waited_for(event_store, monkeypatch):
    event_store.append([message(i, f"m{i}") for i in range(4)])

    def interrupted(after, limit):
        raise KeyboardInterrupt

    monkeypatch.setattr(event_store, "read_log_page", interrupted)
    raised = []

    def catch_up():
        try:
            LogFollower(event_store, Recording(), commit_interval=3600, page_size=2).catch_up()
        except KeyboardInterrupt:
            raised.append("interrupted")

    caller = threading.Thread(target=catch_up, daemon=True)
    caller.start()
    caller.join(5)  # next() waited for ever for a page the dead reader would never hand over
    assert raised == ["interrupted"] and not readers()


def test_the_reader_ends_after_a_failed_apply_and_after_a_reset(event_store):
    event_store.append([message(i, f"m{i}") for i in range(10)])

    class Failing(Recording):
        def apply(self, records):
            raise RuntimeError("a page that fails")

    with pytest.raises(RuntimeError):
        LogFollower(event_store, Failing(), commit_interval=3600, page_size=2).catch_up()
    assert not readers()
    LogFollower(event_store, Recording(reset_at=6, reset_to=2), commit_interval=3600, page_size=2, max_pending=6).catch_up()
    assert not readers()


def test_the_reader_reads_several_pages_ahead_of_the_applying_thread(event_store, monkeypatch):
    """``PAGES_AHEAD`` pages wait to be applied, and the reader holds the next: a read its database was slow to
    answer (its backend waiting for a core) is made up for by the pages read before, not waited for."""
    event_store.append([message(i, f"m{i}") for i in range(20)])
    read = event_store.read_log_page
    calls = []

    def counted(after, limit):
        calls.append(after)
        return read(after, limit)

    monkeypatch.setattr(event_store, "read_log_page", counted)
    ahead = ReadAhead(event_store, 0, 1)
    try:
        deadline = time.monotonic() + 10
        while len(calls) < PAGES_AHEAD + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # no more than that
        assert len(calls) == PAGES_AHEAD + 1 and PAGES_AHEAD > 1
        assert [ahead.next().positions[0] for _ in range(3)] == [1, 2, 3]
    finally:
        ahead.close()
