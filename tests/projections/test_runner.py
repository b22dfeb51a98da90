"""Running and rebuilding: commits at the interval and on stop, atomic swaps, aborts, status."""

from __future__ import annotations

import gc
import io
import sys
import threading
import time

import pytest

from archive import events as ev
from projections.follower import LogFollower
from projections.rebuild import SWITCH_INTERVAL, rebuild
from projections.runner import ProjectionError, ProjectionThreads, status
from projections.transcripts.view import TranscriptProjection
from tests.factories import T0, make, message
from tests.projections.conftest import catch_up

ROOM = "lobby@conference.localhost"



class FreshStub:
    """A rebuild's fresh projection that keeps nothing: ``on_commit`` hears each commit's position."""

    def __init__(self, name: str, on_commit=lambda position: None):
        self.name, self._on_commit = name, on_commit

    def position(self):
        return 0

    def apply(self, records):
        pass

    def commit(self, position):
        self._on_commit(position)


def bodies(views):
    return [line.body for line in views.transcripts.page(ROOM, limit=1000).lines]


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_views_commit_at_the_interval_and_on_stop(event_store, views):
    event_store.append([message(i, f"m{i}") for i in range(5)])
    stop = threading.Event()
    handle = ProjectionThreads(event_store, [(p, 3600.0) for p in views.projections()], stop)
    wait_for(lambda: all(f.applied_position == event_store.head() for f in handle.followers))
    assert bodies(views) == [] and [s.position for s in status(event_store, views.projections())] == [0, 0]
    stop.set()
    handle.join()
    assert bodies(views) == [f"m{i}" for i in range(5)]
    assert [(s.position, s.lag) for s in status(event_store, views.projections())] == [(5, 0), (5, 0)]


def test_short_interval_commits_while_running(event_store, views):
    stop = threading.Event()
    handle = ProjectionThreads(event_store, [(p, 0.05) for p in views.projections()], stop)
    try:
        event_store.append([message(1, "one")])
        wait_for(lambda: bodies(views) == ["one"])
        event_store.append([message(2, "two")])
        wait_for(lambda: bodies(views) == ["one", "two"])
    finally:
        stop.set()
        handle.join()


def test_a_failing_projection_stops_the_others_and_is_reported(event_store, views):
    healthy = []

    class Broken:
        name = "broken"

        def position(self):
            return 0

        def apply(self, records):
            wait_for(lambda: healthy and healthy[0].applied_position == event_store.head())
            raise RuntimeError("boom")

        def commit(self, position):
            raise AssertionError("a torn page must not be committed")

    event_store.append([message(1, "one")])
    stop = threading.Event()
    handle = ProjectionThreads(event_store, [(Broken(), 60.0), (views.projections()[0], 60.0)], stop)
    healthy.append(handle.followers[1])
    wait_for(lambda: stop.is_set())
    with pytest.raises(ProjectionError, match="boom"):
        handle.join()
    assert bodies(views) == ["one"]  # the healthy one committed on the way out


def test_rebuild_swaps_fresh_tables_in_and_a_running_projection_follows(event_store, views):
    event_store.append([message(1, "one", message_id="m1"), make(ev.OccupantJoined, 1, nick="alice")])
    catch_up(event_store, views)
    running = LogFollower(event_store, TranscriptProjection(views.recorder), commit_interval=3600)
    event_store.append([make(ev.MessageCorrected, 2, nick="alice", replaces_id="m1", body="uno"), message(3, "two")])
    running.catch_up()  # committed: the running projection is at the head
    event_store.append([message(4, "three")])
    running._step()  # applied but not committed when the rebuild swaps
    out = io.StringIO()
    report = rebuild(event_store, views.projections(), progress=out)
    assert report.position == event_store.head() and report.events == event_store.head()
    assert "events/s" in out.getvalue() and "ETA" in out.getvalue()
    assert bodies(views) == ["uno", None, "two", "three"]
    running.catch_up()  # its commit finds the swap: it drops its batch and resumes from the new tables
    event_store.append([message(5, "four")])
    running.catch_up()
    assert bodies(views) == ["uno", None, "two", "three", "four"]
    [edited] = [l for l in views.transcripts.page(ROOM, include_originals=True).lines if l.body == "uno"]
    assert [v.body for v in edited.versions] == ["one"]


def test_failed_rebuild_leaves_the_live_views_alone(event_store, views):
    event_store.append([message(i, f"m{i}") for i in range(3)])
    catch_up(event_store, views)
    transcripts = views.projections(["transcripts"])[0]

    class FailsHalfway:
        name = "transcripts"

        def __init__(self):
            self.fresh = None

        def begin_rebuild(self):
            self.fresh = transcripts.begin_rebuild()
            original = self.fresh.apply

            def apply(records):
                original(records[:1])
                raise RuntimeError("disk full")

            self.fresh.apply = apply
            return self.fresh

        def finish_rebuild(self, fresh):
            raise AssertionError("must not swap")

        def abort_rebuild(self, fresh):
            transcripts.abort_rebuild(fresh)

    target = FailsHalfway()
    with pytest.raises(RuntimeError, match="disk full"):
        rebuild(event_store, [target])
    assert bodies(views) == ["m0", "m1", "m2"]
    live, building = views.recorder.generations("transcripts")
    assert building is None and live != target.fresh.generation
    tables = views.recorder.read_rows(
        "SELECT COUNT(*) AS n FROM view_generations WHERE building IS NOT NULL"
        if views.recorder.placeholder == "?" else
        f'SELECT COUNT(*) AS n FROM "{views.recorder.datastore.schema}".view_generations WHERE building IS NOT NULL'
    )
    assert tables[0]["n"] == 0


def test_a_rebuild_commits_as_often_as_the_most_frequent_committer_among_its_targets(event_store):
    """Each target says how many events it wants applied between commits; one that says nothing
    commits at the default."""

    class Recording:
        def __init__(self, name: str, every: int | None):
            self.name, self.commits = name, []
            if every is not None:
                self.rebuild_commit_every = every

        def begin_rebuild(self):
            return FreshStub(self.name, self.commits.append)

        def finish_rebuild(self, fresh):
            pass

    event_store.append([message(i, f"m{i}") for i in range(10)])
    rare, often = Recording("rare", 8), Recording("often", 4)
    rebuild(event_store, [rare, often], page_size=2)
    assert often.commits == rare.commits == [4, 8, 10]
    silent = Recording("silent", None)
    rebuild(event_store, [silent], page_size=2)
    assert silent.commits == [10]  # the default: far more than this log


def test_a_rebuild_finishes_its_targets_at_once_and_raises_what_one_met_after_all_ended(event_store):
    """Each target's last work (PostgreSQL's index builds) overlaps the others': one finishing waits for the
    other to begin, which finishing them one after the other never lets happen."""
    both_finishing = threading.Barrier(2, timeout=10)

    class Waiting:
        def __init__(self, name: str, error: Exception | None = None):
            self.name, self.error, self.finished, self.aborted = name, error, False, False

        def begin_rebuild(self):
            return FreshStub(self.name)

        def finish_rebuild(self, fresh):
            both_finishing.wait()
            if self.error:
                raise self.error
            self.finished = True

        def abort_rebuild(self, fresh):
            self.aborted = True

    event_store.append([message(i, f"m{i}") for i in range(3)])
    first, second = Waiting("first"), Waiting("second")
    assert rebuild(event_store, [first, second]).position == 3
    assert first.finished and second.finished
    failing, other = Waiting("failing", RuntimeError("disk full")), Waiting("other")
    with pytest.raises(RuntimeError, match="disk full"):
        rebuild(event_store, [failing, other])
    assert other.finished and failing.aborted and other.aborted  # (a swapped-in target's abort drops nothing)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_follower_pauses_the_garbage_collector_for_a_page_and_leaves_it_as_it_found_it(event_store, enabled):
    """Decoding, applying and committing a page run with the cyclic collector off (see
    ``follower.collection_paused``); afterwards it is on or off as before, also when a page fails."""
    seen = []

    class Watching:
        name = "watching"
        fail = False

        def position(self):
            return 0

        def apply(self, records):
            seen.append(("apply", gc.isenabled()))
            if self.fail:
                raise RuntimeError("a page that fails half-way")

        def commit(self, position):
            seen.append(("commit", gc.isenabled()))

        def discard(self):
            pass

    event_store.append([message(i, f"m{i}") for i in range(3)])
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        projection = Watching()
        LogFollower(event_store, projection, commit_interval=3600, page_size=2).catch_up()
        assert gc.isenabled() is enabled
        assert seen == [("apply", False), ("apply", False), ("commit", False)]
        projection.fail = True
        with pytest.raises(RuntimeError):
            LogFollower(event_store, projection, commit_interval=3600).catch_up()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


class _CollectorWitness:
    """A view that keeps nothing and notes whether the collector ran while its rebuild was swapped in."""

    name = "witness"

    def __init__(self):
        self.seen: list[bool] = []
        self.intervals: list[float] = []  # the interpreter's switch interval then
        self._position = 0

    def position(self) -> int:
        return self._position

    def apply(self, records) -> None:
        pass

    def commit(self, position: int) -> None:
        self._position = position

    def begin_rebuild(self):
        return _CollectorWitness()

    def finish_rebuild(self, fresh) -> None:
        self.seen.append(gc.isenabled())
        self.intervals.append(sys.getswitchinterval())


def test_a_rebuild_pauses_the_collector_throughout_only_in_the_main_thread(event_store):
    """The command line's rebuild runs without collections; one in a thread of a long-running process (`up`:
    a purge's, an old index's) leaves the collector to the process's other threads."""
    event_store.append([ev.RoomDiscovered(room="r@muc", occurred_at=T0, recorded_at=T0)])
    witness = _CollectorWitness()
    rebuild(event_store, [witness])
    thread = threading.Thread(target=rebuild, args=(event_store, [witness]))
    thread.start()
    thread.join(30)
    assert witness.seen == [False, True] and gc.isenabled()


def test_a_rebuild_hands_the_interpreter_lock_over_often_only_in_the_main_thread(event_store):
    """The command line's rebuild lets its log-reading thread have the interpreter lock within
    ``rebuild.SWITCH_INTERVAL`` of asking, not Python's 5 ms, and puts the process's interval back after;
    one in a thread of a long-running process leaves the interval to it."""
    event_store.append([ev.RoomDiscovered(room="r@muc", occurred_at=T0, recorded_at=T0)])
    witness = _CollectorWitness()
    before = sys.getswitchinterval()
    rebuild(event_store, [witness])
    assert sys.getswitchinterval() == before
    thread = threading.Thread(target=rebuild, args=(event_store, [witness]))
    thread.start()
    thread.join(30)
    assert witness.intervals == [SWITCH_INTERVAL, before] and SWITCH_INTERVAL < before
