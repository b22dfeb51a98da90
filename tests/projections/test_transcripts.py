"""The transcript view: each event kind's line, edits, removals, paging, days, context."""

from __future__ import annotations

from datetime import date, datetime, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import events as ev
from archive.errors import InvalidQueryError, NotFoundError
from archive.times import order_second
from projections.lines import Line, Removal, Version, from_stored, stored
from projections.tables import micros, order_micros, order_micros_each
from projections.transcripts import refs as transcript_refs
from projections.transcripts.queries import ROOM as ROOM_CLAUSE
from projections.transcripts.queries import encode_cursor
from projections.transcripts.view import NO_TIME, RoomTops
from tests.factories import at, make, message
from tests.projections.conftest import catch_up

ROOM = "lobby@conference.localhost"


def lines_of(views, room=ROOM, **options):
    return views.transcripts.page(room, limit=1000, **options).lines


def project(store, views, events):
    store.append(events)
    catch_up(store, views)


def test_every_line_kind(event_store, views):
    project(event_store, views, [
        make(ev.RoomDiscovered, 0, name="Lobby"),
        make(ev.RoomCreated, 1, name="Lobby"),
        make(ev.OccupantJoined, 2, nick="alice", jid="alice@localhost/a", role="moderator", affiliation="owner"),
        make(ev.PresenceChanged, 3, nick="alice", show="away"),
        make(ev.SubjectChanged, 4, subject="Welcome", nick="alice"),
        message(5, "hello"),
        make(ev.NickChanged, 6, old_nick="alice", new_nick="alicia"),
        make(ev.RoleChanged, 7, nick="bob", role="visitor", actor="alicia", reason_text="hush"),
        make(ev.AffiliationChanged, 8, nick="bob", affiliation="member"),
        make(ev.OccupantLeft, 9, nick="bob", reason=ev.LeaveReason.KICKED, actor="alicia", reason_text="spam"),
        make(ev.OccupantLeft, 10, nick="carol", reason=ev.LeaveReason.BANNED),
        make(ev.OccupantLeft, 11, nick="alicia", status="bye"),
        make(ev.ArchiveGap, 20, gap_start=at(12), gap_end=at(19), kind=ev.GapKind.ALL, explanation="offline"),
        make(ev.RoomDestroyed, 21, reason="closed", alternate_room="new@conference.localhost"),
    ])
    lines = lines_of(views)
    assert [line.kind for line in lines] == [
        "room_created", "joined", "subject_changed", "message", "nick_changed", "role_changed",
        "affiliation_changed", "left", "left", "left", "gap", "room_destroyed",
    ]
    created, joined, subject, msg, nick, role, affiliation, kicked, banned, left, gap, destroyed = lines
    assert (joined.nick, joined.role, joined.affiliation, joined.jid) == ("alice", "moderator", "owner", "alice@localhost/a")
    assert (subject.body, subject.nick) == ("Welcome", "alice")
    assert (msg.nick, msg.body, msg.at) == ("alice", "hello", at(5))
    assert (nick.old_nick, nick.new_nick) == ("alice", "alicia")
    assert (role.role, role.actor, role.reason) == ("visitor", "alicia", "hush")
    assert affiliation.affiliation == "member"
    assert (kicked.leave_reason, kicked.actor, kicked.reason) == ("kicked", "alicia", "spam")
    assert banned.leave_reason == "banned"
    assert (left.leave_reason, left.status) == ("left", "bye")
    assert (gap.at, gap.gap_end, gap.gap_kind, gap.reason) == (at(12), at(19), "all", "offline")
    assert (destroyed.reason, destroyed.body) == ("closed", "new@conference.localhost")
    assert created.body == "Lobby"


def test_lines_follow_occurred_at_not_arrival(event_store, views):
    project(event_store, views, [message(10, "live"), message(5, "backfilled", capture=ev.Capture.BACKFILL)])
    lines = lines_of(views)
    assert [line.body for line in lines] == ["backfilled", "live"]
    assert lines[0].capture == "backfill" and lines[1].capture is None


def test_corrections_show_latest_text_and_keep_versions(event_store, views):
    project(event_store, views, [
        message(1, "helo wrld", message_id="m1"),
        make(ev.MessageCorrected, 2, nick="alice", replaces_id="m1", body="hello wrld", stanza_id="c1"),
        make(ev.MessageCorrected, 3, nick="alice", replaces_id="m1", body="hello world", stanza_id="c2"),
    ])
    [line] = lines_of(views)
    assert (line.body, line.edited, line.edited_at, line.versions) == ("hello world", True, at(3), ())
    [original] = lines_of(views, include_originals=True)
    assert [(v.body, v.at) for v in original.versions] == [("helo wrld", at(1)), ("hello wrld", at(2))]


def test_correction_committed_in_an_earlier_batch(event_store, views):
    project(event_store, views, [message(1, "first", message_id="m1")])
    project(event_store, views, [make(ev.MessageCorrected, 2, nick="alice", replaces_id="m1", body="second")])
    [line] = lines_of(views, include_originals=True)
    assert (line.body, [v.body for v in line.versions]) == ("second", ["first"])


def test_ids_are_found_in_older_buckets_and_the_message_archived_last_wins(event_store, views, monkeypatch):
    monkeypatch.setattr(transcript_refs, "BUCKET_BITS", 1)  # two positions a bucket: look-ups cross many
    project(event_store, views, [
        message(1, "first", message_id="m1"), message(2, "reused id", message_id="dup"),
        *[message(3 + i, f"filler {i}") for i in range(8)], message(11, "reused id again", message_id="dup"),
    ])
    project(event_store, views, [
        make(ev.MessageCorrected, 20, nick="alice", replaces_id="m1", body="first, corrected"),
        make(ev.MessageCorrected, 21, nick="alice", replaces_id="dup", body="the later one, corrected"),
    ])
    assert views.transcripts.line(ROOM, "m1").body == "first, corrected"
    bodies = [line.body for line in lines_of(views)]
    assert bodies[1] == "reused id" and bodies[-1] == "the later one, corrected"
    with pytest.raises(NotFoundError):
        views.transcripts.line(ROOM, "nowhere")


def test_correction_by_someone_else_or_of_unknown_message_stands_alone(event_store, views):
    project(event_store, views, [
        message(1, "mine", message_id="m1", occupant_id="occ-a"),
        make(ev.MessageCorrected, 2, nick="mallory", occupant_id="occ-m", replaces_id="m1", body="pwned"),
        make(ev.MessageCorrected, 3, nick="bob", replaces_id="nowhere", body="fixed"),
    ])
    lines = lines_of(views)
    assert [(line.body, line.edited, line.corrects) for line in lines] == [
        ("mine", False, None), ("pwned", True, "m1"), ("fixed", True, "nowhere"),
    ]


@pytest.mark.parametrize("moderated, target", [(True, "sid-1-alice"), (False, "origin-1")])
def test_removal_leaves_a_tombstone_and_keeps_the_original(event_store, views, moderated, target):
    project(event_store, views, [
        message(1, "regrettable", stanza_id="sid-1-alice", origin_id="origin-1"),
        make(ev.MessageRetracted, 2, target_id=target, moderated=moderated,
             by_nick="mod" if moderated else "alice", reason="rude" if moderated else None),
        message(3, "after"),
    ])
    tomb, after = lines_of(views)
    assert tomb.body is None and tomb.removed is not None
    assert (tomb.removed.by_nick, tomb.removed.moderated, tomb.removed.at) == (
        "mod" if moderated else "alice", moderated, at(2))
    assert after.body == "after"
    original = lines_of(views, include_originals=True)[0]
    assert (original.body, original.removed.reason) == ("regrettable", "rude" if moderated else None)


def test_self_retraction_by_someone_else_is_ignored(event_store, views):
    project(event_store, views, [
        message(1, "mine", origin_id="o1", occupant_id="occ-a"),
        message(2, "also mine", origin_id="o2", jid="alice@localhost/phone"),
        make(ev.MessageRetracted, 3, target_id="o1", by_nick="mallory", occupant_id="occ-m"),
        make(ev.MessageRetracted, 4, target_id="o2", by_jid="mallory@localhost"),
        make(ev.MessageRetracted, 5, target_id="o2", by_jid="alice@localhost/laptop"),
    ])
    first, second = lines_of(views)
    assert first.body == "mine" and first.removed is None
    assert second.body is None and second.removed.at == at(5)


def test_retraction_before_its_message_arrives_is_applied_later(event_store, views):
    project(event_store, views, [make(ev.MessageRetracted, 5, target_id="late-sid", moderated=True, by_nick="mod")])
    project(event_store, views, [message(1, "backfilled", stanza_id="late-sid", capture=ev.Capture.BACKFILL)])
    [line] = lines_of(views)
    assert (line.body, line.removed.by_nick) == (None, "mod")
    assert lines_of(views, include_originals=True)[0].body == "backfilled"


def test_removed_then_corrected_stays_removed_and_keeps_both_texts(event_store, views):
    project(event_store, views, [
        message(1, "one", message_id="m1", stanza_id="s1"),
        make(ev.MessageRetracted, 2, target_id="s1", moderated=True, by_nick="mod"),
        make(ev.MessageCorrected, 3, nick="alice", replaces_id="m1", body="two"),
    ])
    [shown] = lines_of(views)
    [kept] = lines_of(views, include_originals=True)
    assert shown.body is None and shown.versions == ()
    assert kept.body == "two" and [v.body for v in kept.versions] == ["one"]


def _chat(store, views, count, room=ROOM):
    project(store, views, [message(i * 60, f"m{i}", room=room) for i in range(count)])


def test_paging_forward_and_backward_with_cursors(event_store, views):
    _chat(event_store, views, 25)
    _chat(event_store, views, 3, room="other@conference.localhost")
    page = views.transcripts.page(ROOM, limit=10)
    bodies = [line.body for line in page.lines]
    assert bodies == [f"m{i}" for i in range(10)] and page.prev_cursor is None
    seen = list(bodies)
    while page.next_cursor:
        page = views.transcripts.page(ROOM, limit=10, cursor=page.next_cursor)
        seen += [line.body for line in page.lines]
    assert seen == [f"m{i}" for i in range(25)]
    assert len(page.lines) == 5 and page.next_cursor is None
    back = views.transcripts.page(ROOM, limit=10, cursor=page.prev_cursor, direction="backward")
    assert [line.body for line in back.lines] == [f"m{i}" for i in range(10, 20)]
    assert back.next_cursor is not None and back.prev_cursor is not None
    latest = views.transcripts.page(ROOM, limit=4, direction="backward")
    assert [line.body for line in latest.lines] == ["m21", "m22", "m23", "m24"] and latest.next_cursor is None
    first = views.transcripts.page(ROOM, limit=4, direction="backward", cursor=latest.prev_cursor)
    more = views.transcripts.page(ROOM, limit=100, direction="backward", cursor=first.prev_cursor)
    assert [line.body for line in more.lines] == [f"m{i}" for i in range(17)] and more.prev_cursor is None
    # A cursor with no line at or behind it: nothing earlier to go back to, nothing later after the end.
    before_all = views.transcripts.page(ROOM, limit=30, cursor=encode_cursor(0, 0))
    assert len(before_all.lines) == 25 and before_all.prev_cursor is None and before_all.next_cursor is None
    last = page.lines[-1]
    after_all = views.transcripts.page(ROOM, direction="backward", cursor=encode_cursor(order_micros(last.at) + 1, 0))
    assert len(after_all.lines) == 25 and after_all.next_cursor is None and after_all.prev_cursor is None


def test_time_range_and_day(event_store, views):
    project(event_store, views, [message(-3600, "yesterday"), message(0, "noon"), message(60, "later"),
                                 message(86400, "tomorrow")])
    ranged = views.transcripts.page(ROOM, start=at(0), end=at(61))
    assert [line.body for line in ranged.lines] == ["noon", "later"]
    day = views.transcripts.day(ROOM, date(2024, 5, 1))
    assert [line.body for line in day.lines] == ["yesterday", "noon", "later"]
    assert [line.body for line in views.transcripts.day(ROOM, "2024-05-02").lines] == ["tomorrow"]


def test_context_around_a_message(event_store, views):
    _chat(event_store, views, 10)
    event_store.append([message(5 * 60 + 1, "target", stanza_id="T", message_id="mid")])
    catch_up(event_store, views)
    for ref in ("T", "mid"):
        context = views.transcripts.context(ROOM, ref, before=2, after=3)
        assert context.target.body == "target"
        assert [line.body for line in context.before] == ["m4", "m5"]
        assert [line.body for line in context.after] == ["m6", "m7", "m8"]
    by_id = views.transcripts.context(ROOM, context.target.id, before=0, after=1)
    assert by_id.before == [] and [line.body for line in by_id.after] == ["m6"]
    assert views.transcripts.line(ROOM, str(context.target.id)).body == "target"


def test_bad_arguments(event_store, views):
    _chat(event_store, views, 1)
    with pytest.raises(InvalidQueryError):
        views.transcripts.page(ROOM, cursor="not a cursor!")
    with pytest.raises(InvalidQueryError):
        views.transcripts.page(ROOM, limit=0)
    with pytest.raises(InvalidQueryError):
        views.transcripts.page(ROOM, direction="sideways")
    with pytest.raises(NotFoundError):
        views.transcripts.context(ROOM, "no-such-message")
    assert views.transcripts.page("empty@conference.localhost").lines == []


def test_a_backfilled_message_never_sorts_before_one_archived_earlier_in_the_same_second(event_store, views):
    # Live capture stamps the receive time; the room's archive whole seconds. The backfilled
    # message was archived after the live one (a later log position), in the same second.
    live = message(5.4, "said live", stanza_id="s-live")
    backfilled = message(5, "backfilled", stanza_id="s-back", capture=ev.Capture.BACKFILL)
    project(event_store, views, [message(4.9, "before"), live, backfilled, message(6, "after")])
    assert [line.body for line in lines_of(views)] == ["before", "said live", "backfilled", "after"]
    assert [line.body for line in views.transcripts.page(ROOM, direction="backward", limit=3).lines] == ["said live", "backfilled", "after"]
    context = views.transcripts.context(ROOM, "s-back", before=1, after=1)
    assert [line.body for line in (*context.before, context.target, *context.after)] == ["said live", "backfilled", "after"]


@pytest.mark.parametrize("moment", [
    datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
    datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc), datetime(2024, 5, 1, 12, 0, 59, 999_999, tzinfo=timezone.utc),
    datetime(1, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
    datetime(1955, 3, 4, 5, 6, 7, 500_000, tzinfo=timezone.utc),
], ids=str)
def test_the_order_time_is_the_whole_second_the_model_orders_by(moment):
    # Computed from a timedelta's parts (a rebuild's every line): equal to what the model's rule says.
    assert order_micros(moment) == micros(order_second(moment))
    assert order_micros_each([moment, moment]) == [micros(order_second(moment))] * 2


def test_a_stored_line_reads_back_as_it_was_and_one_stored_before_a_field_was_added_gets_its_default():
    moment = at(5)
    line = Line(
        id=9, room=ROOM, at=moment, kind="message", nick="n", jid="j@h/r", occupant_id="o", body="b", stanza_id="s",
        origin_id="oi", message_id="m", thread="t", capture="import", edited=True, edited_at=at(6), edit_position=3,
        versions=(Version(body="first", at=moment, position=2, capture="history"),),
        removed=Removal(at=at(7), position=4, moderated=True, by_nick="mod", by_jid="mod@h", reason="spam",
                        capture="import"),
        corrects="c", leave_reason="kicked", reason="r", actor="a", status="st", old_nick="on", new_nick="nn",
        role="moderator", affiliation="owner", gap_end=at(8), gap_kind="k", aliases=("x", "y"), awaiting="w",
        edit_capture="backfill", gap_recovered=3, gap_verified=True,
        stanza_aliases=("y",),
    )  # fmt: skip
    assert all(getattr(line, f.name) != f.default for f in msgspec.structs.fields(Line))  # every field set
    data = stored([line])[0]
    assert from_stored(data) == line
    assert b"occupant_id" not in data  # positional: no field names
    older = msgspec.msgpack.encode(msgspec.structs.astuple(line)[:-5])  # as stored before ``awaiting`` was added
    assert from_stored(older) == msgspec.structs.replace(
        line, awaiting=None, edit_capture=None, gap_recovered=None, gap_verified=False,
        stanza_aliases=())
    # A removal and a version stored before their ``capture`` read as live (None), their other fields as they were.
    before_capture = msgspec.structs.replace(
        line, versions=(Version(body="first", at=moment, position=2),),
        removed=Removal(at=at(7), position=4, moderated=True, by_nick="mod", by_jid="mod@h", reason="spam"))
    kept = from_stored(stored([before_capture])[0])
    assert kept.removed.capture is None and kept.versions[0].capture is None and kept == before_capture


def test_removals_and_versions_say_how_they_were_captured_and_gaps_carry_their_evidence(event_store, views):
    """An imported or backfilled moderation read exactly like one the listener saw, and a gap line lost whether
    the room's archive was read over it and how many messages were recovered (reviewer, LOW 8)."""
    project(event_store, views, [
        message(1, "live one", message_id="m1", stanza_id="s1"),
        make(ev.MessageCorrected, 2, nick="alice", replaces_id="m1", body="backfilled fix", capture=ev.Capture.BACKFILL),
        make(ev.MessageCorrected, 3, nick="alice", replaces_id="m1", body="live fix"),
        make(ev.MessageRetracted, 4, target_id="s1", moderated=True, by_nick="mod", capture=ev.Capture.IMPORT),
        message(5, "imported", stanza_id="s5", capture=ev.Capture.IMPORT),
        make(ev.MessageRetracted, 6, target_id="s5", moderated=True, by_nick="mod"),
        make(ev.ArchiveGap, 20, gap_start=at(10), gap_end=at(20), kind=ev.GapKind.PRESENCE, explanation="away",
             recovered=2, verified=True),
    ])  # fmt: skip
    first, second, gap = lines_of(views, include_originals=True)
    assert [(v.body, v.capture) for v in first.versions] == [("live one", None), ("backfilled fix", "backfill")]
    assert (first.body, first.edit_capture, first.removed.capture) == ("live fix", None, "import")
    assert (second.capture, second.removed.capture) == ("import", None)
    assert (gap.reason, gap.gap_recovered, gap.gap_verified) == ("away", 2, True)
    # The point in time before the live fix: the backfilled fix is the text, set by a backfill.
    from projections.lines import as_at
    then = as_at(first, at(2.5))
    assert (then.body, then.edit_capture, then.edit_position, then.removed) == ("backfilled fix", "backfill", 2, None)


def test_a_decimal_message_id_that_is_no_position_in_the_room_names_its_message(event_store, views):
    """``around`` read any all-digit id as a log position and never looked it up as a message id: ejabberd's
    stanza-ids are decimal, a client's counter ids too, so around=<such an id> was a 404 (reviewer, LOW 7)."""
    project(event_store, views, [
        message(1, "first", stanza_id="s-first"),
        message(2, "by a decimal stanza-id", stanza_id="1717171717171717"),
        message(3, "by a counter id", message_id="900001"),
    ])
    first = lines_of(views)[0]
    for ref, body in (("1717171717171717", "by a decimal stanza-id"), ("900001", "by a counter id"),
                      (str(first.id), "first")):  # a position in the room is still the line at that position
        assert views.transcripts.context(ROOM, ref, before=0, after=0).target.body == body
        assert views.transcripts.line(ROOM, ref).body == body
    with pytest.raises(NotFoundError):  # an int is a position only
        views.transcripts.line(ROOM, 900001)
    with pytest.raises(NotFoundError):
        views.transcripts.line(ROOM, "123456789")


def test_the_feed_pages_every_change_once_even_where_one_event_changed_several_lines(event_store, views):
    """A page of ``changes`` ended inside a group of lines one event changed (a message and the correction
    awaiting it, taken into it: both at the message's position) and the next page began after that position:
    the rest of the group was never delivered (the widget kept the correction, or never showed the message).
    Pages resume after a (position, line) pair and hold at most ``limit`` lines: completing a page with the
    rest of its last event's lines made one sender's many corrections awaiting one message a page of any length."""
    batches = [
        [message(1, "one", message_id="m1"), make(ev.MessageCorrected, 2, nick="alice", replaces_id="m9",
                                                  body="early fix", stanza_id="c0")],
        [make(ev.MessageCorrected, 3, nick="alice", replaces_id="m1", body="uno"), message(4, "nine", message_id="m9"),
         message(5, "ten"), make(ev.MessageRetracted, 6, target_id="sid-5-alice", moderated=True)],
    ]
    for batch in batches:
        project(event_store, views, batch)
    rows = views.recorder.read("transcripts", lambda query, _: query(
        f"SELECT id, shown, rev FROM {{lines}} WHERE {ROOM_CLAUSE} ORDER BY rev, id", (ROOM,)))
    assert len({r["rev"] for r in rows}) < len(rows)  # an event changed several lines
    for limit in (1, 2, 3, 100):
        delivered, after, after_line, pages = [], 0, None, 0
        while (page := views.transcripts.changes(ROOM, after=after, after_line=after_line, limit=limit)).lines or page.gone:
            assert len(page.lines) + len(page.gone) <= limit
            delivered += [line.id for line in page.lines] + page.gone
            after, after_line, pages = page.last, page.last_line, pages + 1
            assert pages <= len(rows)
        # each line once, none lost (none here is for the compliance view only)
        assert sorted(delivered) == sorted(r["id"] for r in rows), limit
        assert views.transcripts.last_change(ROOM) == after == max(r["rev"] for r in rows)


_RUNS = st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), max_size=8), max_size=5)


@settings(max_examples=300, deadline=None)
@given(runs=_RUNS, committed=st.dictionaries(st.integers(0, 3), st.integers(0, 6)), in_order=st.booleans())
def test_late_lines_are_those_of_an_earlier_time_than_a_line_of_their_room_before_them(runs, committed, in_order):
    """``RoomTops.late`` over a commit's runs (rooms' numbers and times, in the order of ids; runs in order, as
    a rebuild's nearly always are, or not) is the rule itself: a line is late if an earlier line of its room,
    committed before or not, is of a later time; a late line moves nothing."""
    if in_order:
        flat = sorted(ts for run in runs for _, ts in run)
        runs = [[(room, flat.pop(0)) for room, _ in run] for run in runs]
    tops = RoomTops(set(committed), committed.__getitem__)
    latest = dict(committed)
    for run in runs:
        expected = []
        for room, ts in run:
            expected.append(1 if ts < latest.get(room, NO_TIME) else 0)
            if not expected[-1]:
                latest[room] = ts
        assert tops.late([room for room, _ in run], [ts for _, ts in run]) == expected
