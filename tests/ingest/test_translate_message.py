"""Message translation: one case per kind of groupchat message (pure functions, no server)."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree as ET

from archive import events as ev
from ingest.roomview import Occupant, RoomView
from ingest.translate_message import translate_archived, translate_message
from ingest.xmlutil import RoomContext
from tests.factories import T0

ROOM = "lobby@conference.localhost"
CTX = RoomContext(room=ROOM, own_nick="archive")
SID = '<stanza-id xmlns="urn:xmpp:sid:0" by="lobby@conference.localhost" id="room-sid-1"/>'


def message(inner: str, *, nick: str | None = "alice", attrs: str = 'id="client-1"') -> ET.Element:
    sender = f"{ROOM}/{nick}" if nick else ROOM
    return ET.fromstring(f'<message xmlns="jabber:client" type="groupchat" from="{sender}" {attrs}>{inner}</message>')


def translate(stanza, room_view=None):
    return translate_message(stanza, CTX, room_view or RoomView(ROOM), T0)


def test_live_message_with_room_stanza_id_origin_id_and_occupant_jid():
    stanza = message(
        f'<body>hi all</body>{SID}<origin-id xmlns="urn:xmpp:sid:0" id="origin-1"/>'
        '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="occ-a"/>',
        attrs='id="client-1" xml:lang="en"',
    )
    room_view = RoomView(ROOM, occupants={"alice": Occupant("alice", "alice@localhost")})
    [event] = translate(stanza, room_view)
    assert event == ev.MessagePosted(
        room=ROOM, occurred_at=T0, recorded_at=T0, nick="alice", body="hi all", stanza_id="room-sid-1",
        message_id="client-1", origin_id="origin-1", jid="alice@localhost", occupant_id="occ-a", lang="en",
    )


def test_stanza_id_by_another_entity_is_not_the_rooms():
    stanza = message('<body>x</body><stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost" id="forged"/>')
    [event] = translate(stanza)
    assert event.stanza_id is None and event.message_id == "client-1"


def test_stanza_id_is_ignored_when_the_room_does_not_advertise_sid():
    ctx = RoomContext(room=ROOM, own_nick="archive", trust_stanza_id=False)
    [event] = translate_message(message(f"<body>x</body>{SID}"), ctx, RoomView(ROOM), T0)
    assert event.stanza_id is None


ROOM_DELAY = f'<delay xmlns="urn:xmpp:delay" from="{ROOM}" stamp="2024-05-01T11:00:00Z"/>'


def joining() -> RoomView:
    view = RoomView(ROOM)
    view.begin_join()
    return view


def test_history_replay_uses_the_rooms_delay_stamp():
    [event] = translate(message(f"<body>old</body>{SID}{ROOM_DELAY}"), joining())
    assert event.capture == ev.Capture.HISTORY
    assert event.occurred_at == T0 - timedelta(hours=1) and event.recorded_at == T0


def test_a_delay_claiming_the_room_after_the_join_is_not_trusted():
    """The room replays history only while the listener joins: later, such a delay is the sender's own."""
    [event] = translate(message(f"<body>backdated</body>{SID}{ROOM_DELAY}"))
    assert (event.capture, event.occurred_at) == (ev.Capture.LIVE, T0)


def test_a_delay_added_by_the_sender_is_not_trusted():
    stanza = message('<body>x</body><delay xmlns="urn:xmpp:delay" from="alice@localhost" stamp="2000-01-01T00:00:00Z"/>')
    [event] = translate(stanza)
    assert event.capture == ev.Capture.LIVE and event.occurred_at == T0


def test_correction_xep_0308():
    stanza = message(f'<body>hello, fixed</body><replace xmlns="urn:xmpp:message-correct:0" id="client-0"/>{SID}')
    [event] = translate(stanza)
    assert isinstance(event, ev.MessageCorrected)
    assert (event.replaces_id, event.body, event.stanza_id) == ("client-0", "hello, fixed", "room-sid-1")


def test_retraction_xep_0424():
    stanza = message(f'<retract xmlns="urn:xmpp:message-retract:1" id="room-sid-0"/><body>fallback</body>{SID}')
    [event] = translate(stanza)
    assert event == ev.MessageRetracted(
        room=ROOM, occurred_at=T0, recorded_at=T0, target_id="room-sid-0", by_nick="alice", stanza_id="room-sid-1"
    )


def test_a_self_retraction_names_the_sender_s_real_jid_as_a_correction_does():
    """A room without occupant-ids that shows real JIDs: alice left and mallory took her nick. Mallory's
    retraction names her real JID, as her correction does, so the message model refuses both (JIDs differ); it
    used to name only the nick, and was taken for alice's (failed on the old code)."""
    view = RoomView(ROOM, occupants={"alice": Occupant("alice", "mallory@localhost")})
    [retraction] = translate(message(f'<retract xmlns="urn:xmpp:message-retract:1" id="room-sid-0"/>{SID}'), view)
    [corrected] = translate(message(f'<body>x</body><replace xmlns="urn:xmpp:message-correct:0" id="room-sid-0"/>{SID}'), view)
    assert (retraction.by_nick, retraction.by_jid) == ("alice", "mallory@localhost") == (corrected.nick, corrected.jid)
    older = message('<apply-to xmlns="urn:xmpp:fasten:0" id="origin-0"><retract xmlns="urn:xmpp:message-retract:0"/></apply-to>')
    assert translate(older, view)[0].by_jid == "mallory@localhost"


def test_retraction_older_fastening_form():
    stanza = message('<apply-to xmlns="urn:xmpp:fasten:0" id="origin-0"><retract xmlns="urn:xmpp:message-retract:0"/></apply-to>')
    [event] = translate(stanza)
    assert (event.target_id, event.moderated, event.by_nick) == ("origin-0", False, "alice")


def test_moderation_xep_0425():
    stanza = message(
        '<retract xmlns="urn:xmpp:message-retract:1" id="room-sid-0">'
        f'<moderated xmlns="urn:xmpp:message-moderate:1" by="{ROOM}/boss"/><reason>off topic</reason></retract>',
        nick=None,
    )
    [event] = translate(stanza)
    assert (event.target_id, event.moderated, event.by_nick, event.reason) == ("room-sid-0", True, "boss", "off topic")


def test_moderation_older_form_naming_the_moderators_jid():
    stanza = message(
        '<apply-to xmlns="urn:xmpp:fasten:0" id="room-sid-0"><moderated xmlns="urn:xmpp:message-moderate:0" '
        'by="boss@localhost/pc"><retract xmlns="urn:xmpp:message-retract:0"/><reason>rude</reason></moderated></apply-to>',
        nick=None,
    )
    [event] = translate(stanza)
    assert (event.moderated, event.by_nick, event.by_jid, event.reason) == (True, None, "boss@localhost", "rude")


def test_moderation_claimed_by_an_occupant_is_rejected():
    stanza = message(
        '<retract xmlns="urn:xmpp:message-retract:1" id="x"><moderated xmlns="urn:xmpp:message-moderate:1" by="r/boss"/></retract>'
    )
    assert translate(stanza) == []


def test_subject_change_by_an_occupant_and_by_the_room():
    [event] = translate(message("<subject>Release day</subject>"))
    assert event == ev.SubjectChanged(room=ROOM, occurred_at=T0, recorded_at=T0, subject="Release day", nick="alice")
    [by_room] = translate(message("<subject/>", nick=None))
    assert (by_room.subject, by_room.nick) == ("", None)


def test_subject_resent_on_join_is_current_state_not_a_change():
    room_view = RoomView(ROOM, subject="Release day")
    room_view.begin_join()
    assert translate(message("<subject>Release day</subject>"), room_view) == []
    [changed] = translate(message("<subject>Other</subject>"), room_view)
    assert changed.subject == "Other"


def test_affiliation_notice_for_a_user_not_in_the_room():
    notice = '<x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="outcast" jid="troll@localhost"/></x>'
    expected = ev.AffiliationChanged(room=ROOM, occurred_at=T0, recorded_at=T0, affiliation="outcast", jid="troll@localhost")
    plain = ET.fromstring(f'<message xmlns="jabber:client" from="{ROOM}">{notice}</message>')  # XEP-0045 example 195
    assert translate(plain) == [expected]
    assert translate(message(notice, nick=None)) == [expected]
    from_occupant = ET.fromstring(f'<message xmlns="jabber:client" from="{ROOM}/alice">{notice}</message>')
    assert translate(from_occupant) == []


def test_archived_message_from_mam_takes_the_archive_id_and_stamp():
    result = ET.fromstring(
        f'<message xmlns="jabber:client" from="{ROOM}" to="archiver@localhost/x">'
        '<result xmlns="urn:xmpp:mam:2" queryid="q1" id="archive-id-7"><forwarded xmlns="urn:xmpp:forward:0">'
        '<delay xmlns="urn:xmpp:delay" stamp="2024-05-01T10:00:00.250Z"/>'
        f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/bob" id="c9"><body>from the archive</body>'
        '<x xmlns="http://jabber.org/protocol/muc#user"><item jid="bob@localhost/laptop"/></x></message>'
        "</forwarded></result></message>"
    )
    [event] = translate_archived(result, CTX, RoomView(ROOM), T0, ev.Capture.BACKFILL)
    assert (event.stanza_id, event.nick, event.body, event.jid) == ("archive-id-7", "bob", "from the archive", "bob@localhost")
    assert event.capture == ev.Capture.BACKFILL
    assert event.occurred_at == T0 - timedelta(hours=2) + timedelta(milliseconds=250)


def test_malformed_or_foreign_messages_are_skipped():
    bad_stamp = message(f'<body>x</body><delay xmlns="urn:xmpp:delay" from="{ROOM}" stamp="yesterday"/>')
    correction_without_id = message('<body>x</body><replace xmlns="urn:xmpp:message-correct:0"/>')
    chat = ET.fromstring(f'<message xmlns="jabber:client" type="chat" from="{ROOM}/alice"><body>pm</body></message>')
    other_room = ET.fromstring('<message xmlns="jabber:client" type="groupchat" from="x@y/z"><body>x</body></message>')
    chat_state = message('<active xmlns="http://jabber.org/protocol/chatstates"/>')
    not_mam = ET.fromstring(f'<message xmlns="jabber:client" from="{ROOM}"/>')
    assert translate(bad_stamp, joining()) == []  # replayed history, but when?
    for stanza in (correction_without_id, chat, other_room, chat_state):
        assert translate(stanza) == []
    assert translate_archived(not_mam, CTX, RoomView(ROOM), T0, ev.Capture.IMPORT) == []


def archived(nick: str, occupant: str | None = None) -> ET.Element:
    tag = f'<occupant-id xmlns="urn:xmpp:occupant-id:0" id="{occupant}"/>' if occupant else ""
    return ET.fromstring(
        f'<message xmlns="jabber:client" from="{ROOM}"><result xmlns="urn:xmpp:mam:2" queryid="q" id="a-1">'
        '<forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2024-05-01T10:00:00Z"/>'
        f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{nick}" id="c1"><body>b</body>{tag}</message>'
        "</forwarded></result></message>"
    )


def test_a_backfilled_message_gets_the_real_jid_from_the_occupant_list():
    present = RoomView.from_events(ROOM, [
        ev.OccupantJoined(room=ROOM, occurred_at=T0, recorded_at=T0, nick="bob", jid="bob@localhost", occupant_id="occ-b"),
        ev.OccupantJoined(room=ROOM, occurred_at=T0, recorded_at=T0, nick="carol", jid="carol@localhost", occupant_id="occ-c"),
        ev.OccupantLeft(room=ROOM, occurred_at=T0, recorded_at=T0, nick="carol", occupant_id="occ-c"),
    ])  # fmt: skip

    def jid(stanza):
        [event] = translate_archived(stanza, CTX, present, T0, ev.Capture.BACKFILL)
        return event.jid

    assert jid(archived("bob", "occ-b")) == "bob@localhost", "present, same person"
    assert jid(archived("bob")) == "bob@localhost", "present, no occupant-id to tell otherwise"
    assert jid(archived("carol-away", "occ-c")) == "carol@localhost", "left since, known by occupant-id across nicks"
    assert jid(archived("bob", "occ-someone-else")) is None, "the nick was someone else's when the message was said"
    assert jid(archived("dave")) is None, "nobody the room told of"
