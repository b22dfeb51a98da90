"""Real XMPP users driven from synchronous code (tests, demo traffic, benchmarks).

Every user is a slixmpp client on one shared asyncio loop in a background
thread. Each action returns once the room has reflected it back (our own
message or presence), so a caller knows the server has processed it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from ingest.client import close

MUC_USER = "{http://jabber.org/protocol/muc#user}"
SID = "{urn:xmpp:sid:0}"


class XmppUsers:
    """A pool of users connected to one server: ``users.connect("alice@localhost", "pw")``."""

    def __init__(self, host: str, port: int, timeout: float = 15.0, ca_certs: str | None = None):
        self.host, self.port, self.timeout, self.ca_certs = host, port, timeout, ca_certs
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="xmpp-users", daemon=True)
        self._thread.start()
        self.users: list[User] = []

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout + 5)

    def connect(self, jid: str, password: str) -> User:
        user = User(self, jid, password)
        self.run(user._connect())
        self.users.append(user)
        return user

    def close(self) -> None:
        for user in self.users:
            try:
                self.run(user._disconnect())
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        async def cancel_all():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self.run(cancel_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)

    def __enter__(self) -> XmppUsers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class User:
    def __init__(self, pool: XmppUsers, jid: str, password: str):
        self.pool, self.jid, self.password = pool, jid, password
        self.nicks: dict[str, str] = {}  # room -> our nick there
        self._waiters: list[tuple[Callable, asyncio.Future]] = []
        self.client: slixmpp.ClientXMPP | None = None

    # -- plumbing ---------------------------------------------------------------

    async def _connect(self) -> None:
        client = self.client = slixmpp.ClientXMPP(self.jid, self.password)
        for plugin in ("xep_0030", "xep_0045", "xep_0199"):
            client.register_plugin(plugin)
        client.plugin["feature_mechanisms"].unencrypted_scram = True
        client.enable_direct_tls = False
        if self.pool.ca_certs:
            client.ca_certs = self.pool.ca_certs
        started = asyncio.get_running_loop().create_future()
        client.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        client.register_handler(Callback("user-stanzas", StanzaPath("presence"), self._incoming))
        client.register_handler(Callback("user-messages", StanzaPath("message"), self._incoming))
        client.connect(self.pool.host, self.pool.port)
        await asyncio.wait_for(started, self.pool.timeout)

    async def _disconnect(self) -> None:
        if self.client:
            await close(self.client)

    def _incoming(self, stanza) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(stanza.xml):
                future.set_result(stanza.xml)

    async def _send_and_wait(self, send: Callable[[], None], predicate: Callable) -> object:
        future = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            send()
            return await asyncio.wait_for(future, self.pool.timeout)
        finally:
            self._waiters.remove(waiter)

    def _reflected_presence(self, room: str, nick: str, kind: str | None = None):
        def matches(xml) -> bool:
            if xml.get("from") != f"{room}/{nick}" or xml.get("type") not in (kind, "error"):
                return False
            return xml.get("type") == "error" or xml.find(f"{MUC_USER}x/{MUC_USER}status[@code='110']") is not None
        return matches

    def _reflected_message(self, room: str, message_id: str):
        return lambda xml: xml.get("from", "").startswith(f"{room}/") and xml.get("id") == message_id and xml.get("type") in ("groupchat", "error")

    def _reflected_subject(self, room: str, subject: str):
        def matches(xml) -> bool:
            if xml.get("type") == "error" and xml.get("from", "").startswith(room):
                return True
            element = xml.find("{jabber:client}subject")
            return xml.get("from") == f"{room}/{self.nicks.get(room)}" and element is not None and (element.text or "") == subject
        return matches

    def _check(self, xml) -> object:
        if xml.get("type") == "error":
            raise RuntimeError(f"{self.jid}: the server refused: {slixmpp.ET.tostring(xml).decode()}")
        return xml

    # -- presence ---------------------------------------------------------------

    def join(self, room: str, nick: str, *, show: str | None = None, status: str | None = None) -> None:
        """Enter a room (asking for no history); returns once we are in."""
        async def go():
            options = {k: v for k, v in (("pshow", show), ("pstatus", status)) if v}
            stanza = self.client.plugin["xep_0045"].make_join_stanza(room, nick, maxstanzas=0, presence_options=options)
            return self._check(await self._send_and_wait(stanza.send, self._reflected_presence(room, nick)))
        xml = self.pool.run(go())
        self.nicks[room] = nick
        return xml

    def create_room(self, room: str, nick: str, **config: str) -> None:
        """Join (creating) a room and accept its configuration (plus ``config`` fields, e.g.
        ``{"muc#roomconfig_whois": "anyone"}``), which unlocks it for others."""
        self.join(room, nick)
        self.configure(room, **config)

    def configure(self, room: str, **config: str) -> None:
        """As the room's owner, change the ``config`` fields of its configuration (the others keep their values)."""
        async def go():
            # Fields left out keep their values: a new room's defaults (XEP-0045 §10.1.3).
            form = self.client.plugin["xep_0004"].make_form(ftype="submit")
            form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
            for var, value in config.items():
                form.add_field(var=var, value=value)
            await self.client.plugin["xep_0045"].set_room_config(room, form)
        self.pool.run(go())

    def set_presence(self, room: str, show: str | None = None, status: str | None = None) -> None:
        nick = self.nicks[room]

        async def go():
            def send():
                self.client.make_presence(pto=f"{room}/{nick}", pshow=show, pstatus=status).send()
            self._check(await self._send_and_wait(send, self._reflected_presence(room, nick)))
        self.pool.run(go())

    def change_nick(self, room: str, new_nick: str) -> None:
        async def go():
            def send():
                self.client.make_presence(pto=f"{room}/{new_nick}").send()
            self._check(await self._send_and_wait(send, self._reflected_presence(room, new_nick)))
        self.pool.run(go())
        self.nicks[room] = new_nick

    def leave(self, room: str, status: str | None = None) -> None:
        nick = self.nicks.pop(room)

        async def go():
            def send():
                self.client.make_presence(pto=f"{room}/{nick}", ptype="unavailable", pstatus=status).send()
            await self._send_and_wait(send, self._reflected_presence(room, nick, "unavailable"))
        self.pool.run(go())

    # -- messages ---------------------------------------------------------------

    def say(self, room: str, body: str, **extra) -> dict:
        """Post a message; returns its ids: ``id`` (ours), ``origin_id``, ``stanza_id`` (the room's, if any)."""
        return self._post(room, body=body, **extra)

    def correct(self, room: str, replaces_id: str, body: str) -> dict:
        return self._post(room, body=body, replace=replaces_id)

    def retract(self, room: str, target_id: str) -> dict:
        """XEP-0424 retraction of one of our messages (``target_id``: the room's stanza-id)."""
        return self._post(room, body="(retracted)", retract=target_id)

    def set_subject(self, room: str, subject: str) -> None:
        self._post(room, subject=subject)

    def _post(self, room, body=None, subject=None, replace=None, retract=None, message_id=None, elements=()) -> dict:
        """``message_id``: the stanza's ``id`` (a fresh one unless given: a test may send a correction first)."""
        message_id, origin = message_id or uuid.uuid4().hex, uuid.uuid4().hex

        async def go():
            def send():
                message = self.client.make_message(mto=room, mtype="groupchat", mbody=body, msubject=subject)
                message["id"] = message_id
                xml = message.xml
                slixmpp.ET.SubElement(xml, f"{SID}origin-id", {"id": origin})
                if replace:
                    slixmpp.ET.SubElement(xml, "{urn:xmpp:message-correct:0}replace", {"id": replace})
                if retract:
                    slixmpp.ET.SubElement(xml, "{urn:xmpp:message-retract:1}retract", {"id": retract})
                xml.extend(elements)  # what a client may add to a message (a test's forged <delay>, say)
                message.send()
            # A subject change is re-broadcast as a new stanza (no id): match its text.
            reflected = self._reflected_subject(room, subject) if subject is not None else self._reflected_message(room, message_id)
            return self._check(await self._send_and_wait(send, reflected))
        xml = self.pool.run(go())
        sid = next((e.get("id") for e in xml.findall(f"{SID}stanza-id") if e.get("by") == room), None)
        return {"id": message_id, "origin_id": origin, "stanza_id": sid}

    # -- moderation ---------------------------------------------------------------

    def kick(self, room: str, nick: str, reason: str = "") -> None:
        self.set_role(room, nick, "none", reason)

    def set_role(self, room: str, nick: str, role: str, reason: str = "") -> None:
        self.pool.run(self.client.plugin["xep_0045"].set_role(room, nick, role, reason=reason))

    def ban(self, room: str, jid: str, reason: str = "") -> None:
        self.set_affiliation(room, jid, "outcast", reason)

    def set_affiliation(self, room: str, jid: str, affiliation: str, reason: str = "") -> None:
        self.pool.run(self.client.plugin["xep_0045"].set_affiliation(room, affiliation, jid=jid, reason=reason))

    def moderate(self, room: str, stanza_id: str, reason: str | None = None) -> None:
        """XEP-0425: as a moderator, have the room retract someone's message (by its stanza-id)."""
        async def go():
            iq = self.client.make_iq_set(ito=room)
            request = slixmpp.ET.SubElement(iq.xml, "{urn:xmpp:message-moderate:1}moderate", {"id": stanza_id})
            slixmpp.ET.SubElement(request, "{urn:xmpp:message-retract:1}retract")
            if reason:
                slixmpp.ET.SubElement(request, "{urn:xmpp:message-moderate:1}reason").text = reason
            await iq.send(timeout=self.pool.timeout)
        self.pool.run(go())

    def destroy(self, room: str, reason: str = "") -> None:
        self.pool.run(self.client.plugin["xep_0045"].destroy(room, reason=reason))
        self.nicks.pop(room, None)
