"""Reading the room list out of an admin command's form (pure; the live case is in test_listener)."""

from slixmpp import ClientXMPP
from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream import ET

from ingest.admin_rooms import room_jids_from_form

ClientXMPP("reader@localhost", "x").register_plugin("xep_0004")  # registers the form's sub-stanzas


def form(fields_xml: str) -> Form:
    return Form(xml=ET.fromstring(f'<x xmlns="jabber:x:data" type="form">{fields_xml}</x>'))


def test_rooms_offered_as_options_or_values_are_read():
    listing = form(
        '<field var="rooms" type="list-multi"><option label="A"><value>A@conference.localhost</value></option>'
        '<option><value>b@conference.localhost</value></option><value>c@conference.localhost</value></field>'
    )
    assert room_jids_from_form(listing, "rooms") == [
        "a@conference.localhost", "b@conference.localhost", "c@conference.localhost"
    ]  # fmt: skip


def test_a_form_without_the_field_or_without_rooms_lists_nothing():
    assert room_jids_from_form(form('<field var="other" type="text-single"><value>x@y</value></field>'), "rooms") == []
    assert room_jids_from_form(form('<field var="rooms" type="list-multi"><required/></field>'), "rooms") == []
    assert room_jids_from_form(form('<field var="rooms" type="list-multi"><option><value>no-at-sign</value></option></field>'), "rooms") == []
