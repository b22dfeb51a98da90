"""The presence view: stays and spans from every presence event, who was there at T,
when someone was there, occupancy buckets, and gaps as "unknown"."""

from __future__ import annotations

import pytest

from archive import events as ev
from archive.errors import InvalidQueryError
from archive.times import format_time
from projections.presence import logic
from tests.factories import at, make, message
from tests.projections.conftest import catch_up

ROOM = "lobby@conference.localhost"


def project(store, views, events):
    store.append(events)
    catch_up(store, views)


def who(views, t, room=ROOM):
    return {o.nick: o for o in views.presence.occupants_at(room, at(t)).occupants}


def test_join_change_and_leave(event_store, views):
    project(event_store, views, [
        make(ev.OccupantJoined, 10, nick="alice", jid="alice@localhost/a", role="participant", affiliation="member",
             occupant_id="occ-a"),
        make(ev.OccupantJoined, 15, nick="bob", role="visitor"),
        make(ev.PresenceChanged, 20, nick="alice", show="away", status="lunch"),
        make(ev.RoleChanged, 30, nick="alice", role="moderator"),
        make(ev.AffiliationChanged, 35, nick="alice", affiliation="admin"),
        make(ev.NickChanged, 40, old_nick="alice", new_nick="alicia"),
        make(ev.OccupantLeft, 50, nick="alicia"),
        make(ev.OccupantLeft, 55, nick="bob", reason=ev.LeaveReason.KICKED),
        message(60, "no presence effect"),
    ])
    assert who(views, 5) == {}
    first = who(views, 12)["alice"]
    assert (first.role, first.affiliation, first.show, first.since, first.jid) == (
        "participant", "member", None, at(10), "alice@localhost/a")
    assert set(who(views, 16)) == {"alice", "bob"}
    away = who(views, 25)["alice"]
    assert (away.show, away.status, away.since) == ("away", "lunch", at(10))
    assert who(views, 32)["alice"].role == "moderator"
    assert who(views, 36)["alice"].affiliation == "admin"
    renamed = who(views, 45)
    assert "alice" not in renamed and renamed["alicia"].since == at(10) and renamed["alicia"].role == "moderator"
    assert set(who(views, 52)) == {"bob"}
    assert who(views, 56) == {}

    [stay] = views.presence.stays(ROOM, nick="alice")
    assert (stay.start, stay.end, stay.end_reason, stay.end_known) == (at(10), at(50), "left", True)
    assert stay.nicks == ["alice", "alicia"] and stay.occupant_id == "occ-a"
    assert [(s.start, s.show, s.role, s.nick) for s in stay.spans] == [
        (at(10), None, "participant", "alice"), (at(20), "away", "participant", "alice"),
        (at(30), "away", "moderator", "alice"), (at(35), "away", "moderator", "alice"),
        (at(40), "away", "moderator", "alicia"),
    ]
    assert views.presence.stays(ROOM, occupant_id="occ-a")[0].id == stay.id
    assert views.presence.stays(ROOM, jid="alice@localhost/a")[0].id == stay.id
    [bob] = views.presence.stays(ROOM, nick="bob")
    assert (bob.end_reason, bob.end_known) == ("kicked", True)


def test_several_stays_and_open_stay(event_store, views):
    project(event_store, views, [
        make(ev.OccupantJoined, 0, nick="alice"),
        make(ev.OccupantLeft, 10, nick="alice"),
        make(ev.OccupantJoined, 20, nick="alice"),
    ])
    project(event_store, views, [make(ev.PresenceChanged, 30, nick="alice", show="dnd")])
    stays = views.presence.stays(ROOM, nick="alice")
    assert [(s.start, s.end) for s in stays] == [(at(0), at(10)), (at(20), None)]
    assert stays[1].end_known and [s.show for s in stays[1].spans] == [None, "dnd"]
    assert [s.start for s in views.presence.stays(ROOM, nick="alice", start=at(15))] == [at(20)]
    assert [s.start for s in views.presence.stays(ROOM, nick="alice", end=at(15))] == [at(0)]


def test_event_about_someone_not_seen_joining_infers_a_stay(event_store, views):
    project(event_store, views, [make(ev.PresenceChanged, 5, nick="ghost", show="xa")])
    [stay] = views.presence.stays(ROOM, nick="ghost")
    assert stay.start_inferred and stay.start == at(5)
    assert who(views, 6)["ghost"].show == "xa"


def test_gap_makes_presence_unknown_not_absent(event_store, views):
    project(event_store, views, [
        make(ev.OccupantJoined, 0, nick="alice"),
        make(ev.OccupantJoined, 1, nick="bob"),
        make(ev.OccupantLeft, 2, nick="bob"),
        make(ev.OccupantJoined, 200, nick="alice"),  # seen again on rejoining
        make(ev.ArchiveGap, 201, gap_start=at(100), gap_end=at(200), kind=ev.GapKind.PRESENCE, explanation="restart"),
    ])
    inside = views.presence.occupants_at(ROOM, at(150))
    assert not inside.known and inside.gap.explanation == "restart" and inside.occupants == []
    assert [o.nick for o in inside.possibly_present] == ["alice"]
    before = views.presence.occupants_at(ROOM, at(50))
    assert before.known and [o.nick for o in before.occupants] == ["alice"]
    after = views.presence.occupants_at(ROOM, at(250))
    assert after.known and [o.nick for o in after.occupants] == ["alice"]
    first, second = views.presence.stays(ROOM, nick="alice")
    assert (first.end, first.end_reason, first.end_known) == (at(100), "gap", False)
    assert (second.start, second.end) == (at(200), None)
    assert [(g.start, g.end, g.kind) for g in views.presence.gaps(ROOM)] == [
        (logic.EARLIEST, at(0), logic.BEFORE_ARCHIVE), (at(100), at(200), "presence"),
    ]


def test_presence_is_known_from_the_rooms_first_live_event(event_store, views):
    """Imported or backfilled history (earlier times, archived late) holds no presence: before the listener was
    first in the room presence is not known, and a room whose events are all imported is never known."""
    imported = {"capture": ev.Capture.IMPORT, "recorded_at": at(300)}
    project(event_store, views, [
        message(10, "from the room's archive", "bob", **imported),
        make(ev.OccupantJoined, 20, nick="bob", **imported),
    ])
    unwatched = views.presence.occupants_at(ROOM, at(30))
    assert (unwatched.known, [o.nick for o in unwatched.occupants]) == (False, ["bob"])
    assert (unwatched.gap.kind, unwatched.gap.end) == (logic.BEFORE_ARCHIVE, logic.NEVER)
    assert "never" in unwatched.gap.explanation
    project(event_store, views, [
        make(ev.RoomDiscovered, 100, recorded_at=at(301)),
        make(ev.OccupantJoined, 100, nick="alice", recorded_at=at(301)),
        message(5, "backfilled later", "carol", capture=ev.Capture.BACKFILL, recorded_at=at(302)),
    ])
    before = views.presence.occupants_at(ROOM, at(99))
    assert not before.known and before.possibly_present == [] and before.gap.end == at(100)
    assert f"begins at {format_time(at(100))}" in before.gap.explanation
    assert views.presence.occupants_at(ROOM, at(100)).known
    assert [(g.start, g.end, g.kind) for g in views.presence.gaps(ROOM)] == [(logic.EARLIEST, at(100), logic.BEFORE_ARCHIVE)]
    assert views.presence.incomplete_gaps() == []
    assert [b.unknown for b in views.presence.occupancy(ROOM, at(0), at(200), buckets=2).buckets] == [True, False]


def test_the_rooms_first_event_begins_its_gap_and_its_first_live_event_ends_it():
    discovered = make(ev.RoomDiscovered, 100)
    imported = message(10, capture=ev.Capture.IMPORT)
    opened = logic.archive_begins(None, 7, imported)
    assert (opened.id, opened.start, opened.end) == (-7, logic.EARLIEST, logic.NEVER)
    assert logic.archive_begins(opened, 8, message(11, capture=ev.Capture.HISTORY)) is None
    ended = logic.archive_begins(opened, 9, discovered)
    assert (ended.id, ended.end) == (-7, at(100))
    assert logic.archive_begins(ended, 10, make(ev.OccupantJoined, 200, nick="a")) is None
    assert logic.archive_begins(None, 3, discovered).end == at(100)
    assert logic.unknown_why(at(99), [ended], None) == ended.explanation
    assert logic.unknown_why(at(100), [ended], at(100)) is None
    assert "last known moment" in logic.unknown_why(at(101), [ended], at(100))


def test_lost_sight_is_unknown_and_room_destroyed_closes_everyone(event_store, views):
    project(event_store, views, [
        make(ev.OccupantJoined, 0, nick="alice"),
        make(ev.OccupantJoined, 0, nick="bob"),
        make(ev.OccupantLeft, 5, nick="alice", reason=ev.LeaveReason.LOST_SIGHT),
        make(ev.RoomDestroyed, 10),
    ])
    assert not views.presence.stays(ROOM, nick="alice")[0].end_known
    [bob] = views.presence.stays(ROOM, nick="bob")
    assert (bob.end, bob.end_reason, bob.end_known) == (at(10), "room_destroyed", True)
    assert who(views, 11) == {}


def test_occupancy_buckets(event_store, views):
    project(event_store, views, [
        make(ev.OccupantJoined, 0, nick="a"),
        make(ev.OccupantJoined, 10, nick="b"),
        make(ev.OccupantLeft, 20, nick="b"),
        make(ev.OccupantJoined, 25, nick="c"),
        make(ev.PresenceChanged, 26, nick="c", show="away"),  # same stay: still one occupant
        make(ev.OccupantLeft, 28, nick="c"),
        make(ev.ArchiveGap, 50, gap_start=at(30), gap_end=at(40)),
        make(ev.OccupantJoined, 40, nick="a"),
    ])
    result = views.presence.occupancy(ROOM, at(0), at(60), buckets=6)
    assert [(b.start, b.end) for b in result.buckets][:2] == [(at(0), at(10)), (at(10), at(20))]
    assert [(b.peak, b.distinct, b.unknown) for b in result.buckets] == [
        (1, 1, False), (2, 2, False), (2, 2, False), (0, 0, True), (1, 1, False), (1, 1, False),
    ]
    assert views.presence.occupancy(ROOM, at(-10), at(0), buckets=1).buckets[0].unknown, "before the archive began"
    with pytest.raises(InvalidQueryError):
        views.presence.occupancy(ROOM, at(10), at(0))
    with pytest.raises(InvalidQueryError):
        views.presence.stays(ROOM)


def test_rooms_are_separate(event_store, views):
    project(event_store, views, [
        make(ev.OccupantJoined, 0, nick="alice"),
        make(ev.OccupantJoined, 0, nick="alice", room="other@conference.localhost"),
        make(ev.RoomDestroyed, 5, room="other@conference.localhost"),
    ])
    assert set(who(views, 6)) == {"alice"} and who(views, 6, "other@conference.localhost") == {}


def test_occupancy_counts_agree_with_counting_every_stay_in_every_bucket():
    """The rule as stated (a stay or gap is in a bucket it overlaps), counted the slow way, on random stays."""
    import random

    from projections.presence.queries import occupancy_counts

    rng = random.Random(7)
    for _ in range(200):
        spans, gaps = [], []
        for stay in range(rng.randint(0, 12)):
            t = rng.randint(0, 100)
            for _ in range(rng.randint(1, 3)):  # a stay's spans are contiguous
                end = t + rng.randint(0, 20)
                spans.append((stay, t, end))
                t = end
        for _ in range(rng.randint(0, 3)):
            g = rng.randint(0, 100)
            gaps.append((g, g + rng.randint(1, 30)))
        edges = sorted(rng.sample(range(-10, 130), rng.randint(2, 8)))
        stays = {}
        for stay, s, e in spans:
            lo, hi = stays.get(stay, (s, e))
            stays[stay] = (min(lo, s), max(hi, e))
        expected = [
            (sum(1 for s, e in stays.values() if s < b and e > a), any(s < b and e > a for s, e in gaps))
            for a, b in zip(edges, edges[1:])
        ]
        assert [(distinct, unknown) for _, distinct, unknown in occupancy_counts(spans, gaps, edges)] == expected


def test_occupancy_of_many_stays_in_many_buckets_compares_each_stay_a_few_times():
    """Each bucket's distinct occupants were counted by a pass over every stay in the range: anyone may ask a
    public room for years in 1,000 buckets, and a room of 100,000 stays then cost seconds of CPU per request,
    holding the interpreter lock. Now each bucket's counts are found by bisection. The work is counted in
    comparisons of times, not in seconds, so the machine's load cannot decide the outcome."""
    from projections.presence.queries import occupancy_counts

    compared = 0

    class Time(int):
        def _count(self, other, answer):
            nonlocal compared
            compared += 1
            return answer

        def __lt__(self, other):
            return self._count(other, int(self) < int(other))

        def __le__(self, other):
            return self._count(other, int(self) <= int(other))

        def __gt__(self, other):
            return self._count(other, int(self) > int(other))

        def __ge__(self, other):
            return self._count(other, int(self) >= int(other))

    stays, buckets = 20_000, 200
    spans = [(i, Time(i * 10), Time(i * 10 + 25)) for i in range(stays)]
    gaps = [(Time(i * 1_000), Time(i * 1_000 + 5)) for i in range(buckets)]
    edges = [Time(i * 1_000) for i in range(buckets + 1)]
    counts = occupancy_counts(spans, gaps, edges)
    assert counts[1] == (3, 102, True)
    # sorting and bisecting: about 10 comparisons per stay; a pass over every stay per bucket: over 300
    assert compared < 100 * stays


def test_the_stay_of_a_line_is_the_one_its_nick_had_at_an_edge_the_one_opening_or_for_a_leave_closing():
    """``logic.stay_at``, the widget's author keys' stays: alice leaves and is back in the same moment."""
    events = [make(ev.OccupantJoined, 0, nick="alice", jid="alice@x/a"), make(ev.OccupantLeft, 5, nick="alice"),
              make(ev.OccupantJoined, 5, nick="alice", jid="alice@x/b"), make(ev.NickChanged, 7, old_nick="alice",
                                                                             new_nick="ally", jid="alice@x/b")]
    room_open, spans = {}, {}
    for position, event in enumerate(events, 1):
        changes = logic.step(room_open, position, event)
        spans.update((span.id, span) for span in changes)
        logic.hold(room_open, changes)
    spans = list(spans.values())
    first, second = logic.span_id(1), logic.span_id(3)
    assert [logic.stay_at(spans, "alice", "alice@x/a", at(t)) for t in (0, 3, 5, 6, 7)] == [
        first, first, second, second, second]
    assert logic.stay_at(spans, "alice", "alice@x", at(5), leaving=True) == first
    assert logic.stay_at(spans, "ally", "alice@x/b", at(7)) == logic.stay_at(spans, "ally", None, at(9)) == second
    assert logic.stay_at(spans, "alice", "mallory@y/a", at(3)) is None  # another's span: not hers
    assert logic.stay_at(spans, "alice", "alice@x/a", at(-1)) is None  # before the archive saw her
