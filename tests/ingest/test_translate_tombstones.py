"""Tombstones in a room's archive (pure translation, no server): a message retracted (XEP-0424) or moderated
(XEP-0425) that the server replaced in its archive by a tombstone, with the ``:1`` and the older ``:0``
namespaces, becomes the post (its text not kept) and its removal at the tombstone's stamp, by whom it names."""

from __future__ import annotations

from datetime import datetime, timezone
from xml.etree import ElementTree as ET

import msgspec

from archive import events as ev
from ingest.catchup import compare, held_ids, recovered_message
from ingest.roomview import RoomView
from ingest.translate_message import translate_archived, translate_message
from ingest.xmlutil import RoomContext
from tests.factories import T0

ROOM = "lobby@conference.localhost"
CTX = RoomContext(room=ROOM, own_nick="archive")
POSTED_AT = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
REMOVED_AT = datetime(2024, 5, 1, 10, 5, 30, tzinfo=timezone.utc)
OCCUPANT = '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="occ-b"/>'


def result(inner: str, *, nick: str = "bob", sid: str = "sid-7", attrs: str = 'id="c9"') -> ET.Element:
    return ET.fromstring(
        f'<message xmlns="jabber:client" from="{ROOM}" to="archiver@localhost/x">'
        f'<result xmlns="urn:xmpp:mam:2" queryid="q1" id="{sid}"><forwarded xmlns="urn:xmpp:forward:0">'
        '<delay xmlns="urn:xmpp:delay" stamp="2024-05-01T10:00:00Z"/>'
        f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{nick}" {attrs}>{inner}</message>'
        "</forwarded></result></message>"
    )


def translate(stanza, view=None, capture=ev.Capture.BACKFILL):
    return translate_archived(stanza, CTX, view or RoomView(ROOM), T0, capture)


def placeholder(**fields) -> ev.MessagePosted:
    return ev.MessagePosted(
        room=ROOM, occurred_at=POSTED_AT, recorded_at=T0, capture=ev.Capture.BACKFILL, nick="bob", body="",
        body_kept=False, stanza_id="sid-7", message_id="c9", **fields,
    )


def removal(**fields) -> ev.MessageRetracted:
    return ev.MessageRetracted(
        room=ROOM, occurred_at=REMOVED_AT, recorded_at=T0, capture=ev.Capture.BACKFILL, target_id="sid-7", **fields
    )


MODERATED_1 = (  # as the reviewer quotes mod_muc_moderation's :1 tombstone
    f'<moderated xmlns="urn:xmpp:message-moderate:1" by="{ROOM}/boss">'
    '<retracted xmlns="urn:xmpp:message-retract:1" stamp="2024-05-01T10:05:30Z"/><reason>off topic</reason></moderated>'
)
MODERATED_1_XEP = (  # XEP-0425 0.3: <moderated> inside <retracted>, the reason beside it
    '<retracted xmlns="urn:xmpp:message-retract:1" stamp="2024-05-01T10:05:30Z">'
    f'<moderated xmlns="urn:xmpp:message-moderate:1" by="{ROOM}/boss">'
    '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="occ-boss"/></moderated><reason>off topic</reason></retracted>'
)
MODERATED_0 = (  # mod_muc_moderation on Prosody 0.12, word for word
    f'<moderated xmlns="urn:xmpp:message-moderate:0" by="{ROOM}/boss">'
    '<retracted xmlns="urn:xmpp:message-retract:0" stamp="2024-05-01T10:05:30Z"/><reason>off topic</reason></moderated>'
)


def test_a_moderated_tombstone_is_the_post_without_its_text_and_its_moderation_at_the_tombstones_stamp():
    for form in (MODERATED_1, MODERATED_0):
        assert translate(result(form + OCCUPANT)) == [
            placeholder(occupant_id="occ-b"),
            removal(moderated=True, by_nick="boss", reason="off topic"),
        ], form


def test_the_xep_0425_form_names_the_moderators_occupant_id():
    assert translate(result(MODERATED_1_XEP + OCCUPANT)) == [
        placeholder(occupant_id="occ-b"),
        removal(moderated=True, by_nick="boss", reason="off topic", occupant_id="occ-boss"),
    ]


def test_an_older_tombstone_naming_the_moderators_real_jid():
    stanza = result(MODERATED_0.replace(f"{ROOM}/boss", "boss@localhost/pc"))
    [_, moderation] = translate(stanza)
    assert (moderation.by_nick, moderation.by_jid, moderation.moderated) == (None, "boss@localhost", True)


def test_a_self_retraction_tombstone_is_the_authors_retraction():
    for form in ('<retracted xmlns="urn:xmpp:message-retract:1" id="c9" stamp="2024-05-01T10:05:30Z"/>',
                 '<retracted xmlns="urn:xmpp:message-retract:0" stamp="2024-05-01T10:05:30Z"/>'):
        assert translate(result(form + OCCUPANT)) == [
            placeholder(occupant_id="occ-b"),
            removal(by_nick="bob", occupant_id="occ-b"),
        ], form


def test_a_first_import_keeps_the_capture_and_a_tombstone_without_a_stamp_takes_the_archives():
    [post, retraction] = translate(result(f'<retracted xmlns="urn:xmpp:message-retract:1" id="c9"/>'), capture=ev.Capture.IMPORT)
    assert post.capture == retraction.capture == ev.Capture.IMPORT
    assert retraction.occurred_at == POSTED_AT


def test_a_moderation_the_archive_holds_already_is_not_recorded_twice():
    """The listener saw the moderation live: a later read of the archive's tombstone adds the post only (which the
    store finds a duplicate of the live copy by its stanza-id), not a second moderation."""
    live = ev.MessageRetracted(room=ROOM, occurred_at=REMOVED_AT, recorded_at=REMOVED_AT, target_id="sid-7",
                               moderated=True, by_nick="boss", stanza_id="sid-8")
    view = RoomView.from_events(ROOM, [live])
    assert translate(result(MODERATED_1), view) == [placeholder()]
    other = RoomView.from_events(ROOM, [msgspec.structs.replace(live, target_id="sid-6")])
    assert len(translate(result(MODERATED_1), other)) == 2


def test_an_authors_retraction_is_known_only_from_the_author():
    """A self-retraction names any id; only the author's own counts as the tombstone's removal (anyone may send one)."""
    def retraction(nick, occupant):
        return ev.MessageRetracted(room=ROOM, occurred_at=REMOVED_AT, recorded_at=REMOVED_AT, target_id="c9",
                                   by_nick=nick, occupant_id=occupant)
    tombstone = result('<retracted xmlns="urn:xmpp:message-retract:1" id="c9" stamp="2024-05-01T10:05:30Z"/>' + OCCUPANT)
    assert len(translate(tombstone, RoomView.from_events(ROOM, [retraction("bob", "occ-b")]))) == 1
    assert len(translate(tombstone, RoomView.from_events(ROOM, [retraction("mallory", "occ-m")]))) == 2


def test_what_is_no_tombstone():
    with_body = result(MODERATED_1 + "<body>I am not removed</body>")
    [post] = translate(with_body)
    assert (post.body, post.body_kept) == ("I am not removed", True), "text was kept: a message, whatever it claims"
    live = ET.fromstring(f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/bob" id="c9">{MODERATED_1}</message>')
    assert translate_message(live, CTX, RoomView(ROOM), T0) == [], "the room sends tombstones only from its archive"
    from_room = result(MODERATED_1)
    from_room.find(".//{jabber:client}message").set("from", ROOM)
    assert translate(from_room) == [], "the room's own messages are no posts"


def test_a_tombstone_is_held_once_its_removal_is_and_its_removal_is_no_recovered_message():
    """The listener saw the message live, then was away while it was moderated, on a server that archives no
    announcement of it: the message is archived, its removal is not; the tombstone's removal makes it whole."""
    live = ev.MessagePosted(room=ROOM, occurred_at=POSTED_AT, recorded_at=POSTED_AT, nick="bob", body="rude",
                            stanza_id="sid-7", message_id="c9")
    server = {"sid-7": (POSTED_AT, translate(result(MODERATED_0), RoomView.from_events(ROOM, [live])))}
    [_, owed] = server["sid-7"][1]
    assert held_ids(server, {"sid-7"}, RoomView.from_events(ROOM, [live])) == set()
    assert held_ids(server, {"sid-7"}, RoomView.from_events(ROOM, [live, owed])) == {"sid-7"}
    assert compare(server, set()).missing == ("sid-7",)
    assert [recovered_message(e) for e in server["sid-7"][1]] == [True, False]
