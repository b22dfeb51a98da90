"""Rooms that service discovery hides, found through the server's admin interface.

XEP-0045 offers no way to list hidden rooms: disco#items shows public rooms only,
even to a server admin. Prosody offers its admins an ad-hoc command (XEP-0050)
on the MUC service, "Destroy Rooms", whose first stage is a form listing every
room. The listener executes only that first stage, reads the list and cancels
the session: the command is never completed, so nothing is destroyed. Servers
without such a command, and accounts without the right, yield no rooms.
"""

from __future__ import annotations

import logging

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

log = logging.getLogger(__name__)

COMMANDS_NODE = "http://jabber.org/protocol/commands"
# Commands whose first form lists every room of the service, by server software.
ROOM_LISTING_COMMANDS = {"http://prosody.im/protocol/muc#destroy": "rooms"}


async def list_rooms_as_admin(client: slixmpp.ClientXMPP, service: str, timeout: float = 15) -> list[str] | None:
    """Every room of ``service`` as its admin sees them; None if this account cannot list them."""
    try:
        items = await client.plugin["xep_0030"].get_items(jid=service, node=COMMANDS_NODE, timeout=timeout)
    except (IqError, IqTimeout):
        return None
    offered = {node for _jid, node, _name in items["disco_items"]["items"]}
    for node, field in ROOM_LISTING_COMMANDS.items():
        if node in offered:
            return await _first_form_values(client, service, node, field, timeout)
    return None


async def _first_form_values(client, service: str, node: str, field: str, timeout: float) -> list[str] | None:
    adhoc = client.plugin["xep_0050"]
    try:
        reply = await adhoc.send_command(service, node, action="execute", timeout=timeout)
    except (IqError, IqTimeout) as e:
        log.info("cannot list the rooms of %s through %s: %s", service, node, e)
        return None
    command = reply["command"]
    try:
        return room_jids_from_form(command["form"], field)
    finally:
        if command["sessionid"] and command["status"] == "executing":
            try:
                await adhoc.send_command(service, node, action="cancel", sessionid=command["sessionid"], timeout=timeout)
            except (IqError, IqTimeout):
                pass  # the server ends abandoned sessions itself


def room_jids_from_form(form, field: str) -> list[str]:
    """The room JIDs a listing form offers in ``field`` (its values and options), lower-cased."""
    found = form.get_fields().get(field)
    if found is None:
        return []
    value = found["value"]
    values = value if isinstance(value, list) else [value]
    options = [option["value"] for option in found.get_options()]
    return sorted({str(v).lower() for v in [*values, *options] if v and "@" in str(v)})
