"""Property: views built incrementally, in any batch sizes, with crashes (uncommitted
work thrown away) and restarts in between, equal views rebuilt from scratch."""

from __future__ import annotations

import shutil
import tempfile
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import events as ev
from archive.application import open_event_store
from projections.follower import LogFollower
from projections.rebuild import rebuild
from projections.views import Views
from tests.factories import make
from tests.projections.conftest import dump
from tests.services.postgres import POSTGRES_DSN

ROOMS = ["a@conference.localhost", "b@conference.localhost"]
NICKS = ["ann", "bob", "cy"]
IDS = ["x1", "x2", "x3", "x4"]

times = st.integers(min_value=0, max_value=120)
rooms = st.sampled_from(ROOMS)
nicks = st.sampled_from(NICKS)
ids = st.sampled_from(IDS)
maybe = st.none() | st.sampled_from(["away", "dnd"])


def _event(kind, t, room, nick, other, ref, ref2, flag, word):
    if kind == "message":
        # ``flag``: the room's stanza-id is one a client may also choose (another post's id attribute or
        # origin-id: a squat, whichever comes first).
        return make(ev.MessagePosted, t, room, nick=nick, body=word, stanza_id=ref2 if flag else f"s-{ref}-{t}",
                    message_id=ref, origin_id=None if flag else ref2)
    if kind == "correct":
        return make(ev.MessageCorrected, t, room, nick=nick, replaces_id=ref, body=word + "!")
    if kind == "retract":
        return make(ev.MessageRetracted, t, room, target_id=ref2 if flag else f"s-{ref}-{t}", moderated=flag,
                    by_nick=other)
    if kind == "join":
        return make(ev.OccupantJoined, t, room, nick=nick, role="participant" if flag else "moderator")
    if kind == "leave":
        return make(ev.OccupantLeft, t, room, nick=nick,
                    reason=ev.LeaveReason.KICKED if flag else ev.LeaveReason.LEFT, reason_text=word)
    if kind == "presence":
        return make(ev.PresenceChanged, t, room, nick=nick, show="away" if flag else None, status=word)
    if kind == "nick":
        return make(ev.NickChanged, t, room, old_nick=nick, new_nick=other)
    if kind == "role":
        return make(ev.RoleChanged, t, room, nick=nick, role="visitor" if flag else "participant")
    if kind == "affiliation":
        return make(ev.AffiliationChanged, t, room, nick=nick, affiliation="member" if flag else "none")
    if kind == "subject":
        return make(ev.SubjectChanged, t, room, subject=word, nick=nick)
    if kind == "gap":
        return make(ev.ArchiveGap, t + 5, room, gap_start=make(ev.RoomCreated, t).occurred_at,
                    gap_end=make(ev.RoomCreated, t + 5).occurred_at)
    return make(ev.RoomDestroyed, t, room, reason=word)


KINDS = ["message"] * 4 + ["correct", "correct", "retract", "retract", "join", "join", "leave", "presence",
                           "nick", "role", "affiliation", "subject", "gap", "destroy"]

events = st.builds(
    _event, st.sampled_from(KINDS), times, rooms, nicks, nicks, ids, ids, st.booleans(),
    st.sampled_from(["hi", "yo", "ok"]),
)

# One step of the incremental run: append some events, then a projection run
# with a page size that applies a number of pages and then commits or crashes.
steps = st.lists(
    st.tuples(st.lists(events, max_size=8), st.integers(1, 7), st.integers(0, 4), st.booleans()),
    min_size=1,
    max_size=8,
)


class Backend:
    """A fresh store and views per example (hypothesis runs many in one test)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __enter__(self):
        # The from-scratch views are SQLite on both backends: the rows compare the same.
        self.dir = tempfile.mkdtemp()
        scratch = f"sqlite:///{self.dir}/scratch.sqlite"
        self.schemas = []
        if self.kind == "sqlite":
            store_url, incremental = f"sqlite:///{self.dir}/events.sqlite", f"sqlite:///{self.dir}/inc.sqlite"
        else:
            self.schemas = [f"p_{uuid.uuid4().hex[:12]}"]
            store_url = incremental = f"postgresql://postgres@127.0.0.1:5432/postgres?schema={self.schemas[0]}"
        self.store = open_event_store(store_url)
        self.incremental = Views(incremental, self.store)
        self.scratch = Views(scratch, self.store)
        return self

    def __exit__(self, *exc):
        self.incremental.close()
        self.scratch.close()
        self.store.close()
        shutil.rmtree(self.dir)
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_incremental(backend: Backend, plan) -> None:
    for new_events, page_size, pages, commit in plan:
        backend.store.append(new_events)
        for projection in backend.incremental.projections():  # a restart: fresh instances
            follower = LogFollower(backend.store, projection, commit_interval=3600, page_size=page_size)
            for _ in range(pages):
                follower._step()
            if commit:
                follower._commit()
            # else: a crash; the applied pages were never committed
    for projection in backend.incremental.projections():
        LogFollower(backend.store, projection, commit_interval=3600, page_size=3).catch_up()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_incremental_with_crashes_equals_rebuild(kind):
    examples = 25 if kind == "sqlite" else 10

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(plan=steps)
    def check(plan):
        with Backend(kind) as backend:
            run_incremental(backend, plan)
            rebuild(backend.store, backend.scratch.projections())
            assert dump(backend.incremental) == dump(backend.scratch)

    check()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_rebuild_through_a_writer_process_equals_incremental(kind):
    """A rebuild committing every few events through its writer process (corrections naming lines of
    the commit before, which may still be being written) makes the views an incremental run makes."""

    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
    @given(plan=steps)
    def check(plan):
        with Backend(kind) as backend:
            run_incremental(backend, plan)
            rebuild(backend.store, backend.scratch.projections(load=False), commit_every=3, background=True)
            assert dump(backend.incremental) == dump(backend.scratch)

    check()
