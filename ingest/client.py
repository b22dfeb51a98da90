"""The slixmpp client of the listener, service discovery, and which rooms to archive."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import InvalidJID
from slixmpp.xmlstream import ET

from archive.errors import ChatArchiveError
from archive.events import room_problem

from .settings import XmppSettings
from .xmlutil import RSM, q

log = logging.getLogger(__name__)

MAM_NS = "urn:xmpp:mam:2"
SID_NS = "urn:xmpp:sid:0"
OCCUPANT_ID_NS = "urn:xmpp:occupant-id:0"
ROOM_GONE = {"item-not-found", "gone"}
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
DISCO_TIMEOUT = 15.0  # seconds a service-discovery query waits for its answer


class XmppSessionError(ChatArchiveError):
    """A one-off session (``verify``) could not be opened."""


@contextlib.asynccontextmanager
async def session(settings: XmppSettings, timeout: float = 30.0) -> AsyncIterator[slixmpp.ClientXMPP]:
    """A connected, authenticated client of the listener's account (a resource of its own), closed after."""
    client = make_client(settings)
    outcome = asyncio.get_running_loop().create_future()

    def settle(value) -> None:
        if not outcome.done():
            outcome.set_result(value)

    client.add_event_handler("session_start", lambda _: settle(None))
    client.add_event_handler("failed_all_auth", lambda _: settle(f"authentication as {settings.jid} failed"))
    client.add_event_handler("connection_failed", lambda e: settle(f"cannot connect: {e}"))
    client.add_event_handler("disconnected", lambda e: settle(f"disconnected: {e}"))
    client.connect(*server_address(settings))
    try:
        try:
            failure = await asyncio.wait_for(outcome, timeout)
        except asyncio.TimeoutError:
            failure = f"no session within {timeout:.0f} s"
        if failure is None and settings.tls and not is_encrypted(client):
            failure = "the server did not offer TLS and [xmpp] tls requires it"
        if failure:
            raise XmppSessionError(f"XMPP session to {server_address(settings)} as {settings.jid}: {failure}")
        yield client
    finally:
        await close(client)


async def close(client: slixmpp.ClientXMPP, wait: float = 1.0) -> None:
    """End a client's connection (or attempt), if any, writing nothing once it has closed.

    slixmpp's send task takes a stanza off its queue, then awaits the outgoing filters (entity caps' is a
    coroutine) before it writes the stanza: a connection closed in between makes the write fail and the task log
    "Exception raised in send queue: NotConnectedError". So that task is stopped first (a stanza still queued is
    dropped, as the close would drop it), then the stream is closed: ``wait`` seconds for the server to close its
    side, else aborted. The next ``connect`` starts a new send task."""
    client.cancel_connection_attempt()
    sender = client._run_out_filters
    if sender is not None and not sender.done():
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    if client.transport:
        try:
            await asyncio.wait_for(client.disconnect(wait=wait, ignore_send_queue=True), wait + 1)
        except asyncio.CancelledError:  # a stopping listener cancels its connection loop's close: close anyway
            client.abort()
            raise
        except Exception:  # noqa: BLE001 - closing anyway
            client.abort()


class DiscoError(Exception):
    def __init__(self, message: str, condition: str | None = None):
        super().__init__(message)
        self.condition = condition


def make_client(settings: XmppSettings) -> slixmpp.ClientXMPP:
    client = slixmpp.ClientXMPP(settings.jid, settings.password)
    # xep_0199's own keepalive stays off (as configured after registration, it never ran): the listener pings with
    # ``flow.keep_alive``, which a pause of reading cannot take for a dead connection.
    for plugin in ("xep_0030", "xep_0045", "xep_0050", "xep_0199"):
        client.register_plugin(plugin)
    client.enable_direct_tls = settings.port == 5223
    client.enable_starttls = True
    if settings.ca_certs:
        client.ca_certs = settings.ca_certs
    if not settings.tls:
        # Without TLS slixmpp refuses every SASL mechanism unless told otherwise;
        # SCRAM still never sends the password itself.
        client.plugin["feature_mechanisms"].unencrypted_scram = True
    return client


def is_encrypted(client: slixmpp.ClientXMPP) -> bool:
    transport = client.transport
    return bool(transport and transport.get_extra_info("ssl_object"))


def server_address(settings: XmppSettings) -> tuple[str, int]:
    return settings.host or settings.jid.partition("@")[2].partition("/")[0], settings.port


def allowed(room: str, settings: XmppSettings) -> bool:
    """Whether include/exclude (shell globs, case-insensitive) let a room be archived."""
    room = room.lower()

    def matches(patterns) -> bool:
        return any(fnmatch.fnmatchcase(room, pattern.lower()) for pattern in patterns)

    return matches(settings.include) and not matches(settings.exclude)


def room_jid_problem(room: str) -> str | None:
    """Why a room a service lists (or the config or the last run names) cannot be joined and archived under that
    name (None: it can): a JID slixmpp refuses (failing every join), one no room's events may name, or one the
    server would know in another form (a resource, a Unicode compatibility form: joined as one room, archived as
    another)."""
    try:
        jid = slixmpp.JID(room)
    except InvalidJID as e:
        return f"{room!r} is not a valid JID: {e}"
    problem = room_problem(room)
    if problem is None and jid.bare != room:
        problem = f"{room!r} is not a room's JID in its normal form ({jid.bare!r})"
    return problem


class UnnamableRooms:
    """The rooms listed under a name no room can have (``room_jid_problem``), skipped for good and warned about
    once each: their joins would fail on every retry. A hostile service may list new such names without end, so
    at most ``MAX`` are kept; past that, one more warning, and the rest are skipped without one."""

    MAX = 1000

    def __init__(self):
        self._known: set[str] = set()

    def skips(self, room: str) -> bool:
        if room in self._known:
            return True
        problem = room_jid_problem(room)
        if problem is None:
            return False
        if len(self._known) < self.MAX:
            self._known.add(room)
            log.warning("skipping a room: %s", problem)
            if len(self._known) == self.MAX:
                log.warning("%d rooms listed under names no room can have: any more are skipped without a warning",
                            self.MAX)
        return True


@dataclass(frozen=True)
class RoomInfo:
    name: str | None
    features: frozenset[str]


async def list_rooms(
    client: slixmpp.ClientXMPP, service: str, timeout: float | None = None, page_size: int = 100
) -> list[str]:
    """Room JIDs a MUC service lists in disco#items (public rooms only), every page of them.

    The query asks for RSM (XEP-0059) pages; a service that pages answers with a
    ``<set>`` and is asked again after its ``<last>``, one that does not lists all at once.
    """
    timeout = DISCO_TIMEOUT if timeout is None else timeout
    rooms: list[str] = []
    after = None
    while True:
        query = await _disco(client, "items", service, timeout, _items_page(client, service, after, page_size, timeout))
        items = [item.get("jid") or "" for item in query.findall(q(DISCO_ITEMS, "item"))]
        rooms += [jid.lower() for jid in items if "@" in jid]
        page = query.find(q(RSM, "set"))
        last = page.findtext(q(RSM, "last")) if page is not None else None
        if not items or not last or last == after:
            return list(dict.fromkeys(rooms))
        after = last


def _items_page(client, service: str, after: str | None, page_size: int, timeout: float):
    iq = client.make_iq_get(ito=service)
    query = ET.SubElement(iq.xml, q(DISCO_ITEMS, "query"))
    rsm = ET.SubElement(query, q(RSM, "set"))
    ET.SubElement(rsm, q(RSM, "max")).text = str(page_size)
    if after:
        ET.SubElement(rsm, q(RSM, "after")).text = after

    async def send():
        reply = await iq.send(timeout=timeout)
        return reply.xml.find(q(DISCO_ITEMS, "query"))

    return send()


async def room_info(client: slixmpp.ClientXMPP, room: str, timeout: float | None = None) -> RoomInfo:
    reply = await _disco(client, "info", room, DISCO_TIMEOUT if timeout is None else timeout)
    info = reply["disco_info"]
    names = [identity[3] for identity in info["identities"] if identity[0] == "conference" and identity[3]]
    return RoomInfo(name=names[0] if names else None, features=frozenset(info["features"]))


async def _disco(client: slixmpp.ClientXMPP, kind: str, jid: str, timeout: float, request=None):
    """A disco#items or disco#info query (``request``: one already made); errors and timeouts
    become DiscoError with their condition."""
    if request is None:
        query = client.plugin["xep_0030"].get_items if kind == "items" else client.plugin["xep_0030"].get_info
        request = query(jid=jid, timeout=timeout)
    try:
        return await request
    except IqError as e:
        condition = e.iq["error"]["condition"]
        raise DiscoError(f"disco#{kind} of {jid}: {condition} {e.text}", condition) from e
    except IqTimeout as e:
        raise DiscoError(f"disco#{kind} of {jid} timed out", "timeout") from e
