"""Back-pressure against a real Prosody, with traffic flowing through the pause and the recovery: while the store
is behind, the listener stops reading from the server, and that must cost neither the session nor the rooms.

Reading paused, no answer of the server is read: a ping, a join, a query asked then would time out though the
server answered. The store is made slow by a gate its appends wait on (``GatedStore``) and a write queue of 5."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager

import pytest
from slixmpp.exceptions import IqTimeout

from archive import events as ev
from ingest.flow import InputFlow, answered
from ingest.listener import Listener
from ingest.listener_thread import ListenerHandle
from ingest.xmlutil import MAM, q
from tests.factories import message
from tests.ingest.helpers import GatedStore, Traffic, archived_stanza_ids, room_events, running_listener, wait_joined
from tests.services.prosody import listener_settings, unique_room, wait_for
from tests.services.tcp_proxy import TcpProxy

QUEUE_LIMIT = 5
FAST_KEEPALIVE = {"keepalive_interval": 0.3, "keepalive_timeout": 1.5}
PAUSED_FOR = 4.0  # seconds: longer than a keepalive round, and than the answers' (shortened) timeouts added up


@contextmanager
def gated_listener(server, store, **overrides):
    """A listener on ``store`` behind a gate (``GatedStore``), its write queue full past ``QUEUE_LIMIT`` events."""
    gated = GatedStore(store)
    listener = Listener(listener_settings(server, **overrides), gated, write_queue_limit=QUEUE_LIMIT)
    listener.lease.acquire()
    handle = ListenerHandle(listener, threading.Event()).start()
    try:
        yield handle, gated
    finally:
        gated.gate.set()
        handle.stop()


def paused_for(listener, seconds: float, check=lambda: None) -> None:
    """Keep the store behind for ``seconds`` with reading paused throughout, calling ``check`` meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert listener.writer.full, "the write queue drained while the store was held back"
        check()
        time.sleep(0.05)


def room_of_two(prosody, people, prefix: str) -> tuple[str, list]:
    """A new room, and alice and bob in it to talk (``Traffic``)."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, prefix)
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    return room, [alice, bob]


@contextmanager
def talking(handle, room: str, talkers: list, prefix: str):
    """Once the listener is in ``room``, ``talkers`` talk in it until the block ends (3 messages at least before the
    block, and 3 after its end); the ``Traffic``."""
    wait_joined(handle, room, timeout=30)
    traffic = Traffic(talkers, [room], prefix=prefix).start()
    try:
        traffic.sent_at_least(3)
        yield traffic
        traffic.sent_at_least(3)
    finally:
        traffic.stop()


def archived_once(store, room: str, sent: list[str]) -> list[ev.ArchiveGap]:
    """Wait until every message sent is archived; check none twice; the room's gap records."""
    wait_for(lambda: set(sent) <= set(archived_stanza_ids(store, room)), 20, message="every message archived")
    archived = archived_stanza_ids(store, room)
    assert len(archived) == len(set(archived)), "a message archived twice"
    return [e for e in room_events(store, room) if isinstance(e, ev.ArchiveGap)]


def test_a_connection_gone_silent_is_found_by_the_keepalive_and_made_again(prosody, people, event_store):
    """The keepalive is what finds a connection that died without a word: a ping goes unanswered."""
    room, talkers = room_of_two(prosody, people, "silent")
    with TcpProxy("127.0.0.1", prosody.port) as proxy:
        with running_listener(prosody, event_store, port=proxy.port, include=(room,), **FAST_KEEPALIVE) as handle:
            listener = handle.listener
            with talking(handle, room, talkers, "silent") as traffic:
                session = listener.status.connected_since
                proxy.silence()
                wait_for(lambda: listener.status.connected_since != session, 15, message="a new session")
                wait_joined(handle, room, timeout=15)
            [gap] = archived_once(event_store, room, traffic.sent[room])  # the silence's, caught up from the archive
    assert gap.kind == ev.GapKind.PRESENCE  # every message recovered: only presence is unknown for the span


def test_a_pause_longer_than_the_keepalive_timeout_keeps_the_session(prosody, people, event_store):
    """The keepalive checks the server, which answers; unread, its answers are no sign of a dead connection."""
    room, talkers = room_of_two(prosody, people, "held")
    with gated_listener(prosody, event_store, include=(room,), **FAST_KEEPALIVE) as (handle, gated):
        listener = handle.listener
        with talking(handle, room, talkers, "held") as traffic:
            session = listener.status.connected_since
            gated.gate.clear()
            wait_for(lambda: listener.status.input_paused, 30, message="reading paused")
            paused_for(listener, PAUSED_FOR)
            gated.gate.set()
            wait_for(lambda: not listener.status.input_paused, 30, message="reading resumed")
        assert archived_once(event_store, room, traffic.sent[room]) == []
        assert archived_stanza_ids(event_store, room) == traffic.sent[room]  # live, in order: nothing read again
        assert listener.status.connected and listener.status.connected_since == session, "the session was dropped"


def test_a_reconnect_while_the_store_is_behind_parks_no_room(prosody, people, event_store, monkeypatch):
    """Connected again with the write queue full (here a backlog of another stream's events, as a disconnect
    releases the live events held during a catch-up), the listener asks the server nothing before the queue has
    drained: a clock query, a room listing or a join sent then would time out unread, and the join's timeout
    would put the room among the refused for ``retry_refused_after``."""
    # Every answer's timeout shortened, so that a pause of seconds outlasts them all.
    monkeypatch.setattr("ingest.joining.JOIN_TIMEOUT", 2.0)
    monkeypatch.setattr("ingest.client.DISCO_TIMEOUT", 1.0)
    monkeypatch.setattr("ingest.clock.TIME_TIMEOUT", 1.0)
    room, talkers = room_of_two(prosody, people, "rejoin")
    backlog = unique_room(prosody, "backlog")
    with TcpProxy("127.0.0.1", prosody.port) as proxy:
        only = {"port": proxy.port, "include": (room,), "muc_services": (prosody.muc_service,)}
        with gated_listener(prosody, event_store, **only) as (handle, gated):
            listener = handle.listener
            with talking(handle, room, talkers, "rejoin") as traffic:
                proxy.cut()
                wait_for(lambda: not listener.status.connected, message="the listener to notice the cut")
                gated.gate.clear()
                listener.writer.put([message(i, room=backlog, stanza_id=f"backlog-{i}") for i in range(QUEUE_LIMIT + 1)])
                assert listener.writer.full
                proxy.restore()
                wait_for(lambda: listener.status.connected and listener.status.input_paused, 30,
                         message="connected again, reading paused")
                paused_for(listener, PAUSED_FOR, check=lambda: _no_room_refused(listener))
                gated.gate.set()
                wait_joined(handle, room, timeout=15)
            _no_room_refused(listener)
            [gap] = archived_once(event_store, room, traffic.sent[room])  # the cut's, caught up from the room's archive
    assert gap.kind == ev.GapKind.PRESENCE  # every message recovered: only presence is unknown for the span


def _no_room_refused(listener) -> None:
    assert listener.refused_rooms() == {}, "a room parked as refused"


def _joins(room: str):
    return lambda xml: xml.tag == q("jabber:client", "presence") and xml.get("to", "").startswith(f"{room}/")


def _archive_queries(room: str):
    return lambda xml: xml.get("to") == room and xml.find(q(MAM, "query")) is not None


@pytest.mark.parametrize("asked", [_joins, _archive_queries], ids=["join", "archive query"])
def test_an_answer_a_pause_holds_back_is_waited_for(prosody, people, event_store, monkeypatch, asked):
    """The store falls behind just as the listener asks the room something (its join, the first page of its
    archive): the answer waits unread until the queue drains. That is no refusal, and no archive that cannot be
    read: the room is joined and its archive imported once reading again, with the live messages in between."""
    monkeypatch.setattr("ingest.joining.JOIN_TIMEOUT", 2.0)
    monkeypatch.setattr("ingest.mam.MAM_TIMEOUT", 2.0)
    room, talkers = room_of_two(prosody, people, "asked")
    backlog = unique_room(prosody, "backlog")
    traffic = Traffic(talkers, [room], prefix="asked").start()
    try:
        traffic.sent_at_least(3)  # in the room's archive before the listener comes: imported on its first join
        with gated_listener(prosody, event_store, include=(room,)) as (handle, gated):
            listener = handle.listener
            held = behind_once_sent(handle, gated, asked(room), [
                message(i, room=backlog, stanza_id=f"backlog-{i}") for i in range(QUEUE_LIMIT + 1)
            ])
            wait_for(lambda: held and listener.status.input_paused, 30, message="reading paused once asked")
            paused_for(listener, PAUSED_FOR, check=lambda: _no_room_refused(listener))
            gated.gate.set()
            wait_joined(handle, room, timeout=15)
            traffic.sent_at_least(3)
            traffic.stop()
            assert archived_once(event_store, room, traffic.sent[room]) == []
            _no_room_refused(listener)
    finally:
        traffic.stop()


def behind_once_sent(handle, gated, matches, backlog: list) -> list:
    """Once the listener sends a stanza ``matches`` says yes to, its store falls behind (the gate closed, ``backlog``
    queued), in its loop before the stanza leaves: the answer comes with reading paused. The stanzas held, in a list."""
    held: list = []

    def hook(stanza):
        if not held and matches(stanza.xml):
            gated.gate.clear()
            handle.listener.writer.put(backlog)
            held.append(stanza)
        return stanza

    wait_for(lambda: handle.listener.client, message="the listener's client").add_filter("out", hook)
    return held


def test_only_an_answer_missed_while_reading_is_asked_for_again():
    """``answered``: a request timed out with reading paused meanwhile is made again once reading; one timed out
    while reading, or failed otherwise, fails."""
    async def run() -> None:
        flow, made = InputFlow(), []

        async def request(pause_first: bool, error: Exception):
            made.append(flow.paused)
            if pause_first and len(made) == 1:
                flow.set_paused(True)  # the pause begins while the request waits: its answer is not read
                asyncio.get_running_loop().call_later(0.05, flow.set_paused, False)
                raise error
            if len(made) == 1:
                raise error
            return "answer"

        assert await answered(flow, lambda: request(True, IqTimeout(None))) == "answer"
        assert made == [False, False]  # made again only once reading
        for error in (IqTimeout(None), ValueError("refused")):
            made.clear()
            with pytest.raises(type(error)):
                await answered(flow, lambda: request(False, error))
        made.clear()
        with pytest.raises(ValueError):
            await answered(flow, lambda: request(True, ValueError("refused")))  # an answer, however read

    asyncio.run(run())
