"""The catch-up anchor and the gap record, with stanzas fed directly to the listener's room handling (no network)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from xml.etree import ElementTree as ET

from archive import events as ev
from ingest.backfill import _stored_ids
from ingest.catchup import (
    Anchor,
    ArchiveRead,
    CatchUp,
    begin_catch_up,
    compare,
    fallback_read,
    first_catch_up,
    first_read,
    found_gone,
    gap_event,
    history_request,
    open_gaps,
    reconcile_start,
    restart_gap_start,
    written_on_interruption,
)
from ingest.joining import await_subject
from ingest.roomview import RoomView
from ingest.rooms import GONE, JOINED, JOINING, LOST, UNAVAILABLE, Rooms
from ingest.settings import XmppSettings
from ingest.status import ListenerStatus
from ingest.xmlutil import RoomContext
from tests.factories import at, make, message
from tests.ingest.helpers import short

ROOM = "lobby@conference.localhost"


class Writer:
    def __init__(self):
        self.written: list[ev.Event] = []

    def put(self, events):
        self.written += events


def stanza(xml: str) -> SimpleNamespace:
    return SimpleNamespace(xml=ET.fromstring(xml))


def live_message(sid: str, nick: str = "bob", body: str = "live", delay: str = "") -> SimpleNamespace:
    return stanza(
        f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{nick}" id="c-{sid}">'
        f"<body>{body}</body><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='{sid}'/>{delay}</message>"
    )


def presence(nick: str, show: str) -> SimpleNamespace:
    return stanza(
        f'<presence xmlns="jabber:client" from="{ROOM}/{nick}"><show>{show}</show>'
        "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>"
    )


def rejoining_room(stored: list[ev.Event]):
    """A room the archive holds ``stored`` of, its catch-up begun as ``joining._join`` begins it."""
    rooms = Rooms(XmppSettings(), store=None, writer=Writer(), previous=None, on_change=lambda: None)
    view = rooms.views[ROOM] = RoomView.from_events(ROOM, stored)
    state = rooms.state(ROOM)
    state.phase, state.mam, state.ctx = JOINING, True, RoomContext(room=ROOM, own_nick="archive")
    state.anchor = begin_catch_up(state.anchor, view)
    state.holding = True
    return rooms, state, view


def replayed(sid: str, stamp: str, body: str = "old") -> SimpleNamespace:
    """A message of the discussion history the room replays on join (Prosody's shape)."""
    return live_message(sid, body=body, delay=f"<delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp}'/>")


def join_subject(subject: str, stamp: str) -> SimpleNamespace:
    """The subject the room sends last on join, stamped (by Prosody) when it was set."""
    return stanza(
        f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}"><subject>{subject}</subject>'
        f"<delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp}'/></message>"
    )


STORED = [make(ev.OccupantJoined, 1, nick="bob", role="participant", affiliation="none"), message(5, stanza_id="stored-last", nick="bob")]


def test_a_live_message_during_the_rejoin_never_becomes_the_catch_up_anchor():
    rooms, state, view = rejoining_room(STORED)
    assert rooms.take(live_message("live-1"))  # arrives before the catch-up query is made
    assert view.last_stanza_id == "live-1", "the view follows live traffic (the translator needs it)"
    assert first_read(state.anchor, first=False, gap_start=at(9)) == ArchiveRead(after="stored-last")
    assert [e.stanza_id for e in state.held] == ["live-1"], "kept, written after the catch-up"
    assert rooms.writer.written == []


def test_an_interrupted_catch_up_keeps_its_anchor_and_writes_no_live_message_after_the_unread_span():
    rooms, state, view = rejoining_room(STORED)
    rooms.take(live_message("live-1"))
    rooms.take(presence("bob", "away"))
    rooms.went_offline(at(20))  # the connection drops before the catch-up completes
    assert state.phase == LOST
    assert [type(e) for e in rooms.writer.written] == [ev.PresenceChanged], "presence kept; the message comes from MAM"
    rooms.take(live_message("live-2"))  # not handled while lost
    assert begin_catch_up(state.anchor, view) == Anchor("stored-last", STORED[1].occurred_at, STORED[1].recorded_at)


def retraction(target: str, nick: str = "bob") -> SimpleNamespace:
    """A body-less retraction: Prosody neither archives it nor gives it a stanza-id (muc-message-is-historic)."""
    return stanza(
        f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{nick}" id="r-{target}">'
        f"<retract xmlns='urn:xmpp:message-retract:1' id='{target}'/></message>"
    )


def test_an_interrupted_catch_up_writes_the_held_messages_the_rooms_archive_cannot_give_again():
    rooms, state, view = rejoining_room(STORED)
    rooms.take(live_message("live-1"))
    rooms.take(retraction("c-stored-last"))
    rooms.went_offline(at(20))
    [kept] = rooms.writer.written
    assert (type(kept), kept.target_id, kept.stanza_id) == (ev.MessageRetracted, "c-stored-last", None)
    assert begin_catch_up(state.anchor, view).stanza_id == "stored-last"
    restarted = Anchor.of(RoomView.from_events(ROOM, [*STORED, kept]))  # the anchor a restart folds from the store
    assert (restarted.stanza_id, restarted.message_at) == ("stored-last", STORED[1].occurred_at), "read from there again"


def test_an_interrupted_catch_up_drops_only_held_messages_carrying_the_rooms_stanza_id():
    archived = [message(6, stanza_id="s6"), make(ev.MessageRetracted, 7, target_id="c5", by_nick="bob", stanza_id="s7")]
    unarchived = [
        make(ev.MessagePosted, 8, nick="bob", body="with a no-store hint"),
        make(ev.MessageRetracted, 9, target_id="c5", by_nick="bob"),
        make(ev.PresenceChanged, 9, nick="bob"),
    ]
    assert written_on_interruption([*archived, *unarchived]) == unarchived


def test_a_completed_catch_up_lets_the_next_anchor_follow_the_archive():
    rooms, state, view = rejoining_room(STORED)
    rooms.take(live_message("live-1"))
    rooms.release(state)  # what joining does once caught up
    state.phase, state.anchor = JOINED, None
    rooms.take(live_message("live-2"))
    assert [e.stanza_id for e in rooms.writer.written] == ["live-1", "live-2"]
    rooms.went_offline(at(30))
    assert begin_catch_up(state.anchor, view).stanza_id == "live-2"


def test_a_room_without_mam_is_asked_for_history_since_the_anchor_not_since_live_messages():
    rooms, state, view = rejoining_room(STORED)
    state.mam = False
    rooms.take(live_message("live-1"))
    assert history_request(state.anchor, False, False, True, at(9)) == {"since": at(5)}


def test_first_and_fallback_reads():
    anchor = Anchor.of(RoomView.from_events(ROOM, STORED))
    assert first_read(anchor, first=True, gap_start=None) == ArchiveRead()
    assert fallback_read(anchor, at(9)).start == at(5) - (at(60) - at(0))
    quiet = Anchor.of(RoomView.from_events(ROOM, [make(ev.OccupantJoined, 3, nick="bob")]))
    assert first_read(quiet, first=False, gap_start=at(7)).start == at(7) - (at(60) - at(0))


def test_a_room_is_first_until_its_first_join_completes():
    def first(*events):
        return first_catch_up(RoomView.from_events(ROOM, events))

    pending = make(ev.RoomDiscovered, 1, first_join_pending=True)
    assert first()
    assert first(pending)  # the join was refused, or cut off while importing: retried as the first
    assert first(pending, make(ev.OccupantJoined, 2, nick="bob"), message(3))  # an interrupted import's part
    assert not first(pending, message(3), make(ev.FirstJoinCompleted, 4))
    assert not first(make(ev.RoomDiscovered, 1), message(3))  # written before the mark existed: done
    assert not first_catch_up(RoomView(ROOM, purged=True))  # all expired: importing it again would bring it back


def test_a_room_found_gone_after_time_away_ends_within_a_gap_with_its_occupants_out_of_sight():
    view = RoomView.from_events(ROOM, [make(ev.RoomDiscovered, 1), make(ev.OccupantJoined, 2, nick="alice")])
    gap, left, destroyed = found_gone(view, "the service no longer has this room", at(50), gap_start=at(10))
    assert (gap.gap_start, gap.gap_end, gap.kind, gap.verified, gap.recovered) == (at(10), at(50), ev.GapKind.MESSAGES, False, 0)
    assert (left.nick, left.reason, left.occurred_at) == ("alice", ev.LeaveReason.LOST_SIGHT, at(50))
    assert destroyed.occurred_at == at(50) and "unknown time between" in destroyed.reason
    watched = found_gone(view, "the service no longer has this room", at(50), gap_start=None)
    assert [type(e) for e in watched] == [ev.RoomDestroyed, ev.OccupantLeft]
    assert watched[1].reason == ev.LeaveReason.ROOM_DESTROYED


def test_the_span_confirmed_is_read_from_the_store_from_the_whole_second_the_rooms_archive_reads_it_from(event_store):
    """Prosody stamps in whole seconds and reads a query's start to the second (fractions dropped): what it gives
    for the span may be stamped earlier than the start within its second. Read from the exact start, the store
    lacked those copies: reported as not stored, the gap as unverified."""
    start = reconcile_start(Anchor("s", at(70.5), at(70.5)), first=False, gap_start=at(75))
    backfilled = message(10, stanza_id="stamped-in-that-second", capture=ev.Capture.BACKFILL)
    live = message(10.25, stanza_id="received-in-that-second")  # a live copy carries its receive time
    event_store.append([backfilled, live])
    assert _stored_ids(event_store, ROOM, start) == {"stamped-in-that-second", "received-in-that-second"}
    assert start == at(10), "the last archived message less the overlap, in whole seconds"


def test_the_join_asks_for_as_little_history_as_the_archive_needs():
    empty = Anchor()
    assert history_request(empty, True, True, True, None) == {"maxstanzas": 0}, "MAM backfill covers it"
    assert history_request(empty, True, False, True, None) == {}, "first join without MAM: what the room keeps"
    assert history_request(empty, True, False, False, None) == {"maxstanzas": 0}, "no import"
    known = Anchor.of(RoomView.from_events(ROOM, [message(7.25)]))
    assert history_request(known, False, True, True, at(9)) == {"maxstanzas": 0}
    assert history_request(known, False, False, True, at(9)) == {"since": at(7)}, "since the last message"
    quiet = Anchor.of(RoomView.from_events(ROOM, [make(ev.OccupantJoined, 3, nick="bob")]))
    assert history_request(quiet, False, False, True, at(5)) == {"since": at(5)}, "since the gap began"


def test_compare_counts_what_the_server_holds_and_what_is_missing_in_its_order():
    checked = compare(["a", "b", "c", "b"], {"a", "c", "z"})
    assert (checked.server, checked.archived, checked.missing) == (3, 2, ("b",))


def test_gap_events_tell_how_many_were_recovered_and_whether_anything_may_be_missing():
    complete = gap_event(ROOM, at(0), at(9), CatchUp(mam=True, recovered=4, checked=compare(["a", "b"], {"a", "b"})))
    assert (complete.kind, complete.recovered, complete.verified) == (ev.GapKind.PRESENCE, 4, True)
    assert "4 messages recovered" in complete.explanation and "holds 2 messages for the span, all archived" in complete.explanation
    short = gap_event(ROOM, at(0), at(9), CatchUp(mam=True, recovered=1, checked=compare(["a", "b"], {"a"})))
    assert (short.kind, short.verified) == (ev.GapKind.MESSAGES, False) and "1 message could not be stored" in short.explanation
    assert "1 message recovered" in short.explanation  # people read it: not "1 messages"
    expired = gap_event(ROOM, at(0), at(9), CatchUp(mam=True, recovered=2, checked=compare([], set()), problem="the archive starts later"))
    assert expired.kind == ev.GapKind.MESSAGES and "the archive starts later" in expired.explanation
    unreadable = gap_event(ROOM, at(0), at(9), CatchUp(mam=True, problem="the room's archive could not be read (timeout)"))
    assert unreadable.kind == ev.GapKind.MESSAGES and not unreadable.verified
    no_mam = gap_event(ROOM, at(0), at(9), CatchUp(mam=False, recovered=3))
    assert (no_mam.kind, no_mam.recovered) == (ev.GapKind.MESSAGES, 3) and "keeps no archive" in no_mam.explanation


def test_history_replayed_after_the_join_wait_gave_up_is_history_until_the_subject_ends_it():
    """The join waits a few seconds for the subject, then catches up without it: a slow room's history is
    still the room's history (its delay is its stamp; the subject it re-sends is no change); after the
    subject, a delay claiming the room is the sender's own."""
    rooms, state, view = rejoining_room([*STORED, make(ev.SubjectChanged, 2, subject="Plans")])
    view.begin_join()  # as _enter does before sending the join
    asyncio.run(await_subject(state, timeout=0.01))  # no subject within the wait
    rooms.take(replayed("late-1", "2024-05-01T11:00:00Z"))
    rooms.take(join_subject("Plans", "2024-05-01T10:00:00Z"))
    [late] = [e for e in rooms.writer.written + state.held if e.stanza_id == "late-1"]
    assert (late.capture, late.occurred_at.isoformat()) == (ev.Capture.HISTORY, "2024-05-01T11:00:00+00:00")
    subjects = [e for e in rooms.writer.written + state.held if isinstance(e, ev.SubjectChanged)]
    assert subjects == [], "current state, no change"
    assert state.join_done.is_set()
    rooms.take(replayed("forged-1", "2000-01-01T00:00:00Z", body="backdated"))
    [forged] = [e for e in state.held if e.stanza_id == "forged-1"]
    assert forged.capture == ev.Capture.LIVE and forged.occurred_at.year != 2000


def test_a_restart_gap_begins_where_the_previous_run_lost_sight_not_at_the_rooms_last_event():
    # A catch-up cut off by the stop stored part of the archive, recorded after the time away (at 40).
    assert restart_gap_start(at(40), watched_until=None, away_since=at(10)) == at(10)
    assert restart_gap_start(at(40), watched_until=at(50), away_since=None) == at(50)  # watched until the stop
    assert restart_gap_start(at(40), watched_until=at(30), away_since=None) == at(40)
    assert restart_gap_start(at(40), watched_until=None, away_since=None) == at(40)  # an older status: as before
    assert restart_gap_start(None, watched_until=None, away_since=None) is None


def test_open_gaps_keep_the_previous_runs_until_a_room_is_watched_again_or_has_a_start_of_its_own():
    inherited = {"a@muc": at(1), "b@muc": at(2), "c@muc": at(3), "d@muc": at(4)}
    away = {"a@muc": None, "b@muc": at(20), "e@muc": at(30), "first@muc": None}
    assert open_gaps(inherited, away, settled=["c@muc"]) == {
        "a@muc": at(1),  # being taken up, no start of its own yet
        "b@muc": at(20),  # its own (derived from the inherited one, or lost again since)
        "d@muc": at(4),  # not taken up yet: a stop now must not forget it
        "e@muc": at(30),
    }


def test_the_rooms_away_are_those_lost_being_joined_or_refused_with_their_gaps_start():
    previous = ListenerStatus(jid="a@b", pid=1, started_at=at(0), updated_at=at(9), stored_until=at(9),
                              rooms_joined=["kept@muc", "back@muc"], rooms_away={"joining@muc": at(3)})
    rooms = Rooms(XmppSettings(), store=None, writer=Writer(), previous=previous, on_change=lambda: None)
    assert rooms.away() == {"kept@muc": at(9), "back@muc": at(9), "joining@muc": at(3)}, "nothing taken up yet"
    rooms.state("back@muc").phase = JOINED
    rooms.state("joining@muc").phase = JOINING
    watched = rooms.state("watched@muc")
    watched.phase = JOINED
    rooms.went_offline(at(20))
    assert rooms.away() == {"kept@muc": at(9), "back@muc": at(20), "joining@muc": at(3), "watched@muc": at(20)}


def test_a_room_stays_away_until_its_gap_record_is_stored():
    rooms = Rooms(XmppSettings(), store=None, writer=Writer(), previous=None, on_change=lambda: None)
    rooms.views[ROOM] = RoomView(ROOM)
    state = rooms.state(ROOM)
    gap = gap_event(ROOM, at(10), at(20), CatchUp(mam=False))
    rooms.emit_gap(state, [gap])
    state.phase = JOINED
    assert rooms.writer.written == [gap]
    assert rooms.away() == {ROOM: at(10)} and rooms.away(unstored=False) == {}
    rooms.written([SimpleNamespace(event=gap_event(ROOM, at(5), at(20), CatchUp(mam=False)))])  # another gap's
    assert rooms.away() == {ROOM: at(10)}
    rooms.written([SimpleNamespace(event=gap)])
    assert rooms.away() == {}
    assert open_gaps({}, {ROOM: at(30)}, (), unstored={ROOM: at(10), "b@muc": at(3)}) == {ROOM: at(10), "b@muc": at(3)}


def removal(*codes: int, destroy: bool = False) -> SimpleNamespace:
    """The listener's own presence as the room puts it out (status 110 and ``codes``; a destruction's <destroy>)."""
    statuses = "".join(f"<status code='{code}'/>" for code in (110, *codes))
    destroyed = "<destroy><reason>project over</reason></destroy>" if destroy else ""
    return stanza(
        f'<presence xmlns="jabber:client" type="unavailable" from="{ROOM}/archive">'
        f"<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>{destroyed}{statuses}</x>"
        "</presence>"
    )


def put_out_while_catching_up(put_out: SimpleNamespace):
    """A room rejoined after time away (since 10), its join answered and its catch-up running (as ``state.task``),
    live traffic held meanwhile, when the room puts the listener out. Returns the room as left then, and whether the
    join was cancelled (asked before ``asyncio.run`` cancels whatever still runs)."""

    async def scenario():
        rooms, state, view = rejoining_room(STORED)
        state.gap_start = at(10)
        state.task = asyncio.create_task(asyncio.sleep(30))
        rooms.take(live_message("live-1"))
        rooms.take(presence("bob", "away"))
        rooms.take(put_out)
        await asyncio.sleep(0)
        return rooms, state, state.task.cancelled()

    return asyncio.run(scenario())


def test_a_kick_while_catching_up_ends_the_join_and_keeps_the_time_away_for_the_next_attempt():
    """Failed before: the kick released the held messages, restarted the gap at the kick and left the join running,
    which then marked the room joined (never retried, the time away and the kick in no gap)."""
    rooms, state, cancelled = put_out_while_catching_up(removal(307))
    assert cancelled, "the join does not go on"
    assert (state.phase, state.gap_start) == (UNAVAILABLE, at(10))
    assert state.anchor.stanza_id == "stored-last", "the next attempt reads the room's archive from there"
    assert [short(e) for e in rooms.writer.written] == [("presence", "bob", "away", None), ("left", "bob", "lost_sight")]
    assert rooms.away() == {ROOM: at(10)}


def test_a_destruction_while_catching_up_records_the_time_away_before_what_was_held():
    """The room's archive went with it: the held live messages are all there is of the span, and the span whose
    catch-up was cut off is a gap in which messages may be missing. Failed before: no gap, the join went on."""
    rooms, state, cancelled = put_out_while_catching_up(removal(destroy=True))
    assert cancelled and state.phase == GONE
    gap, *held = rooms.writer.written
    assert [short(e) for e in held] == [
        ("message", "bob", "live"), ("presence", "bob", "away", None), ("destroyed", "project over"),
        ("left", "bob", "room_destroyed"),
    ]
    assert (gap.gap_start, gap.kind, gap.verified) == (at(10), ev.GapKind.MESSAGES, False)
    assert gap.gap_end == held[2].occurred_at and "destroyed, with its archive" in gap.explanation
    assert rooms.away() == {ROOM: at(10)}, "away until the store has the gap record"
