"""Service discovery on a service that behaves like ejabberd's: disco#items paged with RSM, and
only occupied rooms listed once there are more rooms than a limit (ejabberd: above 100)."""

from __future__ import annotations

import time
import uuid

import pytest

from archive import events as ev
from chat_archive.xmpp_users import XmppUsers
from tests.ingest.helpers import running_listener, wait_for_event, wait_joined
from tests.services.prosody import PASSWORD, start_prosody, wait_for

PAGE_MAX = 2  # the service's largest page
OCCUPIED_ONLY_ABOVE = 3  # more public rooms than this: only occupied ones are listed

# The room list as ejabberd's mod_muc serves it, for Prosody's MUC component.
LISTING_MODULE = """
local st = require "util.stanza";
local mod_muc = module:depends("muc");
local RSM = "http://jabber.org/protocol/rsm";
local page_max = module:get_option_number("muc_list_page_max", 1000);
local occupied_above = module:get_option_number("muc_list_only_occupied_above", nil);

module:hook("iq-get/host/http://jabber.org/protocol/disco#items:query", function (event)
	local origin, stanza = event.origin, event.stanza;
	local query = stanza.tags[1];
	if query.attr.node then return; end
	local public = {};
	for room in mod_muc.all_rooms() do
		if not room:get_hidden() then table.insert(public, room); end
	end
	local occupied_only = occupied_above and #public > occupied_above;
	local jids = {};
	for _, room in ipairs(public) do
		if not occupied_only or room:has_occupant() then table.insert(jids, room.jid); end
	end
	table.sort(jids);
	local reply = st.reply(stanza):query("http://jabber.org/protocol/disco#items");
	local set = query:get_child("set", RSM);
	local max = set and math.min(tonumber(set:get_child_text("max")) or page_max, page_max) or #jids;
	local after = set and set:get_child_text("after");
	local first, last, n = nil, nil, 0;
	for _, jid in ipairs(jids) do
		if (not after or jid > after) and n < max then
			reply:tag("item", { jid = jid }):up();
			first, last, n = first or jid, jid, n + 1;
		end
	end
	if set then
		reply:tag("set", { xmlns = RSM });
		if first then reply:tag("first"):text(first):up():tag("last"):text(last):up(); end
		reply:tag("count"):text(tostring(#jids)):up();
	end
	origin.send(reply);
	return true;
end, 10);
"""


@pytest.fixture(scope="module")
def ejabberd_like(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prosody-paged")
    (directory / "mod_muc_list_paged.lua").write_text(LISTING_MODULE, encoding="utf-8")
    server = start_prosody(
        directory, muc_modules=("muc_list_paged",),
        muc_options={"muc_list_page_max": str(PAGE_MAX), "muc_list_only_occupied_above": str(OCCUPIED_ONLY_ABOVE)},
    )  # fmt: skip
    yield server
    server.stop()


def test_every_page_of_rooms_is_listed_and_a_room_listed_late_is_archived_from_its_first_message(ejabberd_like, tmp_path):
    from archive.application import open_event_store

    server = ejabberd_like
    prefix = f"paged{uuid.uuid4().hex[:6]}"
    rooms = [f"{prefix}-{i}@{server.muc_service}" for i in range(5)]
    quiet = f"{prefix}-quiet@{server.muc_service}"
    with XmppUsers("127.0.0.1", server.port) as users, open_event_store(f"sqlite:///{tmp_path}/e.sqlite") as store:
        alice, bob = users.connect("alice@localhost", PASSWORD), users.connect("bob@localhost", PASSWORD)
        for room in rooms:
            alice.create_room(room, "alice")  # occupied: listed, over three pages of two
        bob.create_room(quiet, "bob")
        bob.say(quiet, "said before anyone archived")
        bob.leave(quiet)  # empty: a service with this many rooms no longer lists it
        with running_listener(server, store, include=(f"{prefix}-*",), muc_services=(server.muc_service,)) as listener:
            wait_for(lambda: set(listener.joined_rooms()) == set(rooms), 20, message="every page's rooms joined")
            assert quiet not in listener.joined_rooms()
            bob.join(quiet, "bob")  # occupied again: listed again
            bob.say(quiet, "said when it was listed again")
            wait_joined(listener, quiet)
            wait_for_event(store, quiet, ("message", "bob", "said when it was listed again"))
            messages = [r.event for r in store.read_room(quiet) if isinstance(r.event, ev.MessagePosted)]
    assert [m.body for m in messages] == ["said before anyone archived", "said when it was listed again"]
    assert messages[0].capture == ev.Capture.IMPORT, "its archive read from the start"


# A hostile service: its room list holds, beside its real rooms, items no room can be named by.
HOSTILE_LISTING_MODULE = """
local st = require "util.stanza";
local mod_muc = module:depends("muc");
local extra = module:get_option_array("muc_list_extra_items", {});

module:hook("iq-get/host/http://jabber.org/protocol/disco#items:query", function (event)
	local origin, stanza = event.origin, event.stanza;
	if stanza.tags[1].attr.node then return; end
	local reply = st.reply(stanza):query("http://jabber.org/protocol/disco#items");
	for room in mod_muc.all_rooms() do
		if not room:get_hidden() then reply:tag("item", { jid = room.jid }):up(); end
	end
	for _, jid in ipairs(extra) do reply:tag("item", { jid = jid }):up(); end
	origin.send(reply);
	return true;
end, 10);
"""
HOSTILE = "hostile"
INVALID_ROOMS = [f'{HOSTILE}-a b@conference.localhost', f'{HOSTILE}-q"x@conference.localhost',
                 f"{HOSTILE}-r@conference.localhost/resource", f"{HOSTILE}-{'x' * 1100}@conference.localhost",
                 f"{HOSTILE}-flip\u202e@conference.localhost"]


@pytest.fixture(scope="module")
def hostile_service(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prosody-hostile")
    (directory / "mod_muc_list_hostile.lua").write_text(HOSTILE_LISTING_MODULE, encoding="utf-8")
    extra = "{ " + ", ".join(lua_string(jid) for jid in INVALID_ROOMS) + " }"
    server = start_prosody(directory, muc_modules=("muc_list_hostile",), muc_options={"muc_list_extra_items": extra})
    yield server
    server.stop()


def lua_string(text: str) -> str:
    plain = {ord(c) for c in " -@./"}
    return '"' + "".join(chr(b) if b in plain or chr(b).isascii() and chr(b).isalnum() else f"\\{b:03d}"
                         for b in text.encode()) + '"'


def test_a_listed_item_no_room_can_be_named_by_is_skipped_with_one_warning(hostile_service, tmp_path, caplog):
    """An invalid room JID in a service's room list made its join fail with a logged traceback, again on every
    retry. Each is now skipped with one warning, nothing stored for it; the service's real rooms are archived."""
    from archive.application import open_event_store

    server = hostile_service
    room = f"{HOSTILE}-{uuid.uuid4().hex[:6]}@{server.muc_service}"
    caplog.set_level("INFO")
    with XmppUsers("127.0.0.1", server.port) as users, open_event_store(f"sqlite:///{tmp_path}/e.sqlite") as store:
        users.connect("alice@localhost", PASSWORD).create_room(room, "alice")
        with running_listener(server, store, include=(f"{HOSTILE}-*",), muc_services=(server.muc_service,),
                              poll_interval=0.2, retry_refused_after=0.2) as listener:
            wait_joined(listener, room)
            time.sleep(1.5)  # several polls and retry periods
        rooms = store.rooms()
    assert rooms == [room]
    assert [r for r in caplog.records if r.exc_info] == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for invalid in INVALID_ROOMS:
        assert len([w for w in warnings if repr(invalid.lower()) in w]) == 1, (invalid, warnings)
