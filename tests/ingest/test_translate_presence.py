"""Presence translation, one case per XEP-0045 situation (pure functions, no server)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from archive import events as ev
from ingest.roomview import Occupant, RoomView
from ingest.translate_presence import is_own_presence, lost_sight, translate_presence
from ingest.xmlutil import RoomContext
from tests.factories import T0

ROOM = "lobby@conference.localhost"
CTX = RoomContext(room=ROOM, own_nick="archive")
MUC_USER = "http://jabber.org/protocol/muc#user"


def presence(nick: str, inner: str = "", *, kind: str | None = None, x: str = "", item: str = 'role="participant" affiliation="none"', item_body: str = "") -> ET.Element:
    type_attr = f' type="{kind}"' if kind else ""
    item_xml = f"<item {item}>{item_body}</item>" if item is not None else ""
    return ET.fromstring(
        f'<presence xmlns="jabber:client" from="{ROOM}/{nick}" to="archiver@localhost/x"{type_attr}>'
        f'{inner}<x xmlns="{MUC_USER}">{item_xml}{x}</x></presence>'
    )


def view(*occupants: Occupant) -> RoomView:
    return RoomView(ROOM, occupants={o.nick: o for o in occupants})


ALICE = Occupant("alice", "alice@localhost", "participant", "member")


def test_join_carries_role_affiliation_real_jid_show_status_and_occupant_id():
    stanza = presence(
        "alice",
        '<show>away</show><status>lunch</status><occupant-id xmlns="urn:xmpp:occupant-id:0" id="occ-a"/>',
        item='role="moderator" affiliation="owner" jid="alice@localhost/phone"',
    )
    [event] = translate_presence(stanza, CTX, view(), T0)
    assert event == ev.OccupantJoined(
        room=ROOM, occurred_at=T0, recorded_at=T0, nick="alice", jid="alice@localhost", role="moderator",
        affiliation="owner", show="away", status="lunch", occupant_id="occ-a",
    )


def test_join_in_semi_anonymous_room_has_no_real_jid():
    [event] = translate_presence(presence("bob"), CTX, view(), T0)
    assert isinstance(event, ev.OccupantJoined) and event.jid is None and event.role == "participant"


def test_occupant_id_is_ignored_when_the_room_does_not_advertise_it():
    ctx = RoomContext(room=ROOM, own_nick="archive", trust_occupant_id=False)
    stanza = presence("bob", '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="forged"/>')
    [event] = translate_presence(stanza, ctx, view(), T0)
    assert event.occupant_id is None


def test_leave_with_status_text():
    stanza = presence("alice", "<status>bye</status>", kind="unavailable", item='role="none" affiliation="member"')
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert isinstance(event, ev.OccupantLeft)
    assert (event.nick, event.reason, event.status) == ("alice", ev.LeaveReason.LEFT, "bye")


def test_show_and_status_change_of_a_present_occupant():
    stanza = presence("alice", "<show>dnd</show><status>busy</status>", item='role="participant" affiliation="member"')
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert isinstance(event, ev.PresenceChanged)
    assert (event.nick, event.show, event.status) == ("alice", "dnd", "busy")


def test_unchanged_presence_of_a_present_occupant_is_no_event():
    stanza = presence("alice", item='role="participant" affiliation="member"')
    assert translate_presence(stanza, CTX, view(ALICE), T0) == []


def test_nick_change_303():
    stanza = presence(
        "alice", kind="unavailable", item='role="participant" affiliation="member" nick="alicia"', x='<status code="303"/>'
    )
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert isinstance(event, ev.NickChanged) and (event.old_nick, event.new_nick) == ("alice", "alicia")
    after = view(ALICE)
    after.apply(event)
    rejoined = presence("alicia", item='role="participant" affiliation="member"')
    assert translate_presence(rejoined, CTX, after, T0) == [], "the new nick's presence is not a join"


def test_kick_307_with_actor_and_reason():
    stanza = presence(
        "alice", kind="unavailable", item='role="none" affiliation="member"',
        item_body='<actor nick="boss"/><reason>spam</reason>', x='<status code="307"/>',
    )
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert (event.reason, event.actor, event.reason_text) == (ev.LeaveReason.KICKED, "boss", "spam")


def test_ban_301():
    stanza = presence(
        "alice", kind="unavailable", item='role="none" affiliation="outcast"',
        item_body='<actor jid="boss@localhost"/>', x='<status code="301"/>',
    )
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert (event.reason, event.actor) == (ev.LeaveReason.BANNED, "boss@localhost")


def test_removal_by_affiliation_change_321_and_members_only_322():
    for code in (321, 322):
        stanza = presence("alice", kind="unavailable", item='role="none" affiliation="none"', x=f'<status code="{code}"/>')
        [event] = translate_presence(stanza, CTX, view(ALICE), T0)
        assert event.reason == ev.LeaveReason.REMOVED


def test_shutdown_332_of_an_occupant_and_of_the_listener():
    stanza = presence("alice", kind="unavailable", item='role="none" affiliation="member"', x='<status code="332"/>')
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert event.reason == ev.LeaveReason.SHUTDOWN
    own = presence("archive", kind="unavailable", item='role="none" affiliation="owner"', x='<status code="110"/><status code="332"/>')
    [closed] = translate_presence(own, CTX, view(ALICE), T0)
    assert (closed.nick, closed.reason) == ("alice", ev.LeaveReason.SHUTDOWN)


def test_role_change_with_actor():
    stanza = presence("alice", item='role="moderator" affiliation="member"', item_body='<actor nick="boss"/>')
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert isinstance(event, ev.RoleChanged) and (event.role, event.actor, event.jid) == ("moderator", "boss", "alice@localhost")


def test_affiliation_change_of_a_present_occupant():
    stanza = presence("alice", item='role="participant" affiliation="admin"')
    [event] = translate_presence(stanza, CTX, view(ALICE), T0)
    assert isinstance(event, ev.AffiliationChanged) and (event.nick, event.affiliation) == ("alice", "admin")


def test_role_and_affiliation_change_together_give_two_events():
    stanza = presence("alice", item='role="moderator" affiliation="owner"')
    events = translate_presence(stanza, CTX, view(ALICE), T0)
    assert [type(e) for e in events] == [ev.RoleChanged, ev.AffiliationChanged]


def test_own_presence_is_not_an_occupant_event():
    own = presence("archive", item='role="moderator" affiliation="owner"', x='<status code="110"/><status code="100"/>')
    assert is_own_presence(own, CTX)
    assert translate_presence(own, CTX, view(), T0) == []
    assert not is_own_presence(presence("alice"), CTX)


def test_room_destruction_seen_by_the_listener_closes_out_everyone():
    own = presence(
        "archive", kind="unavailable", item='role="none" affiliation="none"',
        x='<destroy jid="new@conference.localhost"><reason>moved</reason></destroy><status code="110"/>',
    )
    destroyed, left = translate_presence(own, CTX, view(ALICE), T0)
    assert destroyed == ev.RoomDestroyed(
        room=ROOM, occurred_at=T0, recorded_at=T0, reason="moved", alternate_room="new@conference.localhost"
    )
    assert (left.nick, left.reason) == ("alice", ev.LeaveReason.ROOM_DESTROYED)


def test_listener_kicked_loses_sight_of_everyone():
    own = presence("archive", kind="unavailable", item='role="none" affiliation="none"', x='<status code="110"/><status code="307"/>')
    [left] = translate_presence(own, CTX, view(ALICE), T0)
    assert left.reason == ev.LeaveReason.LOST_SIGHT


def test_lost_sight_closes_out_occupants_not_announced_during_a_rejoin():
    room = view(ALICE, Occupant("bob"))
    room.begin_join()
    room.seen.add("bob")
    [left] = lost_sight(room, T0)
    assert (left.nick, left.reason) == ("alice", ev.LeaveReason.LOST_SIGHT)


def test_malformed_presences_are_skipped():
    no_x = ET.fromstring(f'<presence xmlns="jabber:client" from="{ROOM}/alice"/>')
    bad_code = presence("alice", x='<status code="abc"/>')
    no_new_nick = presence("alice", kind="unavailable", x='<status code="303"/>')
    no_item = presence("alice", item=None)
    no_from = ET.fromstring('<presence xmlns="jabber:client"/>')
    for stanza in (no_x, bad_code, no_new_nick, no_item, no_from):
        assert translate_presence(stanza, CTX, view(ALICE), T0) == []


def test_presence_of_another_room_or_an_error_is_ignored():
    other = ET.fromstring(
        f'<presence xmlns="jabber:client" from="other@conference.localhost/x"><x xmlns="{MUC_USER}"><item role="participant"/></x></presence>'
    )
    error = presence("alice", kind="error")
    assert translate_presence(other, CTX, view(), T0) == []
    assert translate_presence(error, CTX, view(), T0) == []
