"""XMPP sessions the server holds for widget users: the user's own account, joined to one room.

Why server-side (and not XMPP over WebSocket from the browser): the widget stays
a page with a few lines of dependency-free script (no XMPP library in the
browser, no build step, a strict Content-Security-Policy), it works with any
XMPP server whether or not it offers WebSocket (XEP-0156), and it reuses
slixmpp, which the listener already runs. The price is that the archive server
holds the user's password in memory while the session lasts; it is never
written anywhere: not to a log (SASL stanzas are filtered out of slixmpp's
debug log), not to the event store, not to a file.

Every session is a slixmpp client on one shared asyncio loop in a background
thread. The Flask side calls the blocking methods of ``XmppSessions``. A
session that nobody has polled for ``idle_timeout`` seconds leaves the room and
disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import PresenceError

from archive.errors import ChatArchiveError
from archive.times import format_time, utcnow

log = logging.getLogger(__name__)

MAX_ITEMS = 500
MAX_BODY = 10_000


class JoinError(ChatArchiveError):
    """The user's account could not sign in or enter the room; the message says why."""


class NoSuchSession(ChatArchiveError):
    """The widget session ended (left, timed out) or never existed."""


class _DropSasl(logging.Filter):
    """slixmpp logs every stanza at debug level; SASL exchanges carry credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "xmpp-sasl" not in record.getMessage()


for _name in ("slixmpp.xmlstream.xmlstream", "slixmpp.features.feature_mechanisms.mechanisms"):
    logging.getLogger(_name).addFilter(_DropSasl())


@dataclass(frozen=True)
class ServerAddress:
    """Where widget users' accounts connect (usually the listener's server)."""

    host: str = ""  # empty: the JID's domain
    port: int = 5222
    tls: bool = True
    ca_certs: str = ""


@dataclass
class Session:
    """One user's account in one room, and what it has seen there."""

    id: str
    room: str
    nick: str
    jid: str
    client: ClientXMPP
    items: deque = field(default_factory=lambda: deque(maxlen=MAX_ITEMS))
    next_seq: int = 1
    last_seen: float = field(default_factory=time.monotonic)

    def add(self, kind: str, nick: str, body: str | None = None) -> None:
        self.items.append({"seq": self.next_seq, "kind": kind, "nick": nick, "body": body, "at": format_time(utcnow())})
        self.next_seq += 1


class XmppSessions:
    """Widget sessions by id; thread-safe blocking API over a private asyncio loop."""

    def __init__(
        self, server: ServerAddress, *, idle_timeout: float = 120.0, join_timeout: float = 15.0, max_sessions: int = 500
    ):
        self.server = server
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.join_timeout = join_timeout
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._reaper = self._loop.create_task(self._reap_idle())
        self._thread = threading.Thread(target=self._run, name="widget-xmpp", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # The blocking API, for request handlers.

    def join(self, jid: str, password: str, room: str, nick: str) -> Session:
        """Sign in as ``jid`` and enter ``room`` as ``nick``; raises JoinError."""
        try:
            bare = JID(jid)
        except Exception as e:  # slixmpp raises InvalidJID, a ValueError-like of its own
            raise JoinError(f"{jid!r} is not a JID (user@example.org)") from e
        if not bare.user or not password:
            raise JoinError("a JID (user@example.org) and its password are needed to join")
        if self.count() >= self.max_sessions:
            raise JoinError("too many people are joined through widgets right now: try again later")
        try:
            return self._call(self._join(bare.bare, password, room, nick), self.join_timeout + 5)
        except JoinError:
            raise
        except (TimeoutError, asyncio.TimeoutError) as e:
            raise JoinError("the XMPP server did not answer in time") from e

    def get(self, session_id: str, room: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.room != room:
            raise NoSuchSession("this widget session has ended: join again")
        session.last_seen = time.monotonic()
        return session

    def items(self, session_id: str, room: str, after: int = 0) -> list[dict]:
        session = self.get(session_id, room)
        return [item for item in list(session.items) if item["seq"] > after]

    def say(self, session_id: str, room: str, body: str) -> None:
        session = self.get(session_id, room)
        body = body.strip()
        if not body:
            return
        if len(body) > MAX_BODY:
            raise JoinError(f"a message is at most {MAX_BODY} characters")
        self._loop.call_soon_threadsafe(
            lambda: session.client.send_message(mto=JID(room), mbody=body, mtype="groupchat")
        )

    def leave(self, session_id: str, room: str) -> None:
        session = self.get(session_id, room)
        self._call(self._close(session), 10)

    def close(self) -> None:
        """End every session and stop the loop (server shutdown)."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            try:
                self._call(self._close(session), 5)
            except Exception:  # shutting down: nothing more to do about a stuck session
                log.warning("widget session %s did not close cleanly", session.id[:6])
        self._call(self._stop_reaper(), 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # On the loop.

    async def _join(self, jid: str, password: str, room: str, nick: str) -> Session:
        client = ClientXMPP(jid, password)
        client.register_plugin("xep_0030")
        client.register_plugin("xep_0045")
        client.register_plugin("xep_0199")
        client.enable_direct_tls = False  # the configured port is the STARTTLS (c2s) port
        if not self.server.tls:
            client.enable_plaintext = True
            client.plugin["feature_mechanisms"].unencrypted_scram = True
        if self.server.ca_certs:
            client.ca_certs = self.server.ca_certs
        session = Session(secrets.token_urlsafe(24), room, nick, jid, client)
        started = self._loop.create_future()
        failed = self._loop.create_future()

        def fail(message: str):
            if not failed.done():
                failed.set_result(message)

        client.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        client.add_event_handler("failed_all_auth", lambda _: fail("the XMPP server refused this JID and password"))
        client.add_event_handler("connection_failed", lambda e: fail("could not connect to the XMPP server"))
        client.add_event_handler("presence_error", lambda p: _join_refused(p, room, fail))
        _watch_room(client, session)
        client.connect(self.server.host or None, self.server.port)
        try:
            await _first(started, failed, self.join_timeout)
            client.send_presence()
            join = asyncio.ensure_future(
                client.plugin["xep_0045"].join_muc_wait(JID(room), nick, maxstanzas=20, timeout=self.join_timeout)
            )
            await _first(join, failed, self.join_timeout)
        except BaseException:
            await _disconnect(client)
            raise
        with self._lock:
            self._sessions[session.id] = session
        return session

    async def _close(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)
        try:
            session.client.plugin["xep_0045"].leave_muc(JID(session.room), session.nick)
        except Exception:  # already gone: the disconnect below is what matters
            pass
        await _disconnect(session.client)

    async def _stop_reaper(self) -> None:
        self._reaper.cancel()
        await asyncio.gather(self._reaper, return_exceptions=True)

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(self.idle_timeout / 4, 15))
            now = time.monotonic()
            with self._lock:
                idle = [s for s in self._sessions.values() if now - s.last_seen > self.idle_timeout]
            for session in idle:
                await self._close(session)


async def _disconnect(client: ClientXMPP) -> None:
    """Close the stream and drop the client's pending tasks (slixmpp leaves its out-filter
    task behind, which otherwise fails when collected after the loop has closed)."""
    try:
        if client.transport is not None:
            await asyncio.wait_for(client.disconnect(wait=0.5), 2)
    except Exception:  # the connection is going away either way
        pass
    task = getattr(client, "_run_out_filters", None)
    if task is not None:
        task.cancel()
        client._run_out_filters = None


async def _first(success: asyncio.Future, failed: asyncio.Future, timeout: float):
    """Wait for ``success``; raise JoinError if ``failed`` resolves first or time runs out."""
    done, _ = await asyncio.wait({success, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if failed in done:
        if not success.done():
            success.cancel()
        raise JoinError(failed.result())
    if success in done:
        try:
            return success.result()
        except PresenceError as e:
            raise JoinError(_refusal(e.condition)) from e
        except (TimeoutError, asyncio.TimeoutError) as e:
            raise JoinError("the room did not let this account in") from e
    success.cancel()
    raise JoinError("the XMPP server did not answer in time")


def _join_refused(presence, room: str, fail) -> None:
    if presence["from"].bare == room:
        fail(_refusal(presence["error"]["condition"]))


def _refusal(condition: str) -> str:
    return {
        "conflict": "that nickname is in use in this room: choose another",
        "not-authorized": "the room needs a password",
        "registration-required": "the room is members-only and this account is not a member",
        "forbidden": "this account is banned from the room",
        "item-not-found": "the room does not exist or is locked",
        "service-unavailable": "the room is full",
    }.get(condition, f"the room refused to let this account in ({condition})")


def _watch_room(client: ClientXMPP, session: Session) -> None:
    """Record what the user's account sees in the room: messages, joins and leaves."""
    room = session.room

    def message(msg) -> None:
        if msg["type"] == "groupchat" and msg["from"].bare == room and msg["body"]:
            session.add("message", msg["from"].resource, msg["body"])

    def online(presence) -> None:
        session.add("joined", presence["from"].resource)

    def offline(presence) -> None:
        session.add("left", presence["from"].resource)

    client.add_event_handler("groupchat_message", message)
    client.add_event_handler(f"muc::{room}::got_online", online)
    client.add_event_handler(f"muc::{room}::got_offline", offline)
