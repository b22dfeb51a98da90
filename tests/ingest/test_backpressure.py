"""Back-pressure against a real Prosody, with traffic flowing through the pause and the recovery: while the store
is behind, the listener stops reading from the server, and that must cost neither the session nor the rooms.

Reading paused, no answer of the server is read: a ping, a join, a query asked then would time out though the
server answered. The store is made slow by a gate its appends wait on (``GatedStore``) and a write queue of 5."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from archive import events as ev
from ingest.listener import Listener
from ingest.listener_thread import ListenerHandle
from tests.factories import message
from tests.ingest.helpers import GatedStore, Traffic, archived_stanza_ids, room_events, running_listener, wait_joined
from tests.services.prosody import listener_settings, unique_room, wait_for
from tests.services.tcp_proxy import TcpProxy
from ingest.xmlutil import MAM, q

QUEUE_LIMIT = 5
FAST_KEEPALIVE = {"keepalive_interval": 0.3, "keepalive_timeout": 0.3}
PAUSED_FOR = 2.5  # seconds: several keepalive rounds, and longer than every answer's (shortened) timeout


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


def archived_once(store, room: str, sent: list[str]) -> list[ev.ArchiveGap]:
    """Wait until every message sent is archived; check none twice; the room's gap records."""
    wait_for(lambda: set(sent) <= set(archived_stanza_ids(store, room)), 20, message="every message archived")
    archived = archived_stanza_ids(store, room)
    assert len(archived) == len(set(archived)), "a message archived twice"
    return [e for e in room_events(store, room) if isinstance(e, ev.ArchiveGap)]


def test_a_connection_gone_silent_is_found_by_the_keepalive_and_made_again(prosody, people, event_store):
    """The keepalive is what finds a connection that died without a word: a ping goes unanswered."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "silent")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    with TcpProxy("127.0.0.1", prosody.port) as proxy:
        with running_listener(prosody, event_store, port=proxy.port, include=(room,), **FAST_KEEPALIVE) as handle:
            listener = handle.listener
            wait_joined(handle, room, timeout=30)
            session = listener.status.connected_since
            traffic = Traffic([alice, bob], [room], prefix="silent").start()
            try:
                traffic.sent_at_least(3)
                proxy.silence()
                wait_for(lambda: listener.status.connected_since != session, 15, message="a new session")
                wait_joined(handle, room, timeout=15)
                traffic.sent_at_least(3)
            finally:
                traffic.stop()
            [gap] = archived_once(event_store, room, traffic.sent[room])  # the silence's, caught up from the archive
    assert gap.kind == ev.GapKind.PRESENCE  # every message recovered: only presence is unknown for the span


def test_a_pause_longer_than_the_keepalive_timeout_keeps_the_session(prosody, people, event_store):
    """The keepalive checks the server, which answers; unread, its answers are no sign of a dead connection."""
    alice, bob = people["alice"], people["bob"]
    room = unique_room(prosody, "held")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    with gated_listener(prosody, event_store, include=(room,), **FAST_KEEPALIVE) as (handle, gated):
        listener = handle.listener
        wait_joined(handle, room, timeout=30)
        session = listener.status.connected_since
        traffic = Traffic([alice, bob], [room], prefix="held").start()
        try:
            traffic.sent_at_least(3)
            gated.gate.clear()
            wait_for(lambda: listener.status.input_paused, 30, message="reading paused")
            paused_for(listener, PAUSED_FOR)
            gated.gate.set()
            wait_for(lambda: not listener.status.input_paused, 30, message="reading resumed")
            traffic.sent_at_least(3)
        finally:
            traffic.stop()
        assert archived_once(event_store, room, traffic.sent[room]) == []
        assert archived_stanza_ids(event_store, room) == traffic.sent[room]  # live, in order: nothing read again
        assert listener.status.connected and listener.status.connected_since == session, "the session was dropped"


def test_a_reconnect_while_the_store_is_behind_parks_no_room(prosody, people, event_store, monkeypatch):
    """Connected again with the write queue full (here a backlog of another stream's events, as a disconnect
    releases the live events held during a catch-up), the listener asks the server nothing before the queue has
    drained: a clock query, a room listing or a join sent then would time out unread, and the join's timeout
    would put the room among the refused for ``retry_refused_after``."""
    # Every answer's timeout shortened, so that a pause of seconds outlasts them all.
    monkeypatch.setattr("ingest.joining.JOIN_TIMEOUT", 1.0)
    monkeypatch.setattr("ingest.client.DISCO_TIMEOUT", 0.5)
    monkeypatch.setattr("ingest.clock.TIME_TIMEOUT", 0.5)
    alice, bob = people["alice"], people["bob"]
    room, backlog = unique_room(prosody, "rejoin"), unique_room(prosody, "backlog")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    with TcpProxy("127.0.0.1", prosody.port) as proxy:
        with gated_listener(prosody, event_store, port=proxy.port, include=(room,)) as (handle, gated):
            listener = handle.listener
            wait_joined(handle, room, timeout=30)
            traffic = Traffic([alice, bob], [room], prefix="rejoin").start()
            try:
                traffic.sent_at_least(3)
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
                traffic.sent_at_least(3)
            finally:
                traffic.stop()
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
    monkeypatch.setattr("ingest.joining.JOIN_TIMEOUT", 1.0)
    monkeypatch.setattr("ingest.mam.MAM_TIMEOUT", 1.0)
    alice, bob = people["alice"], people["bob"]
    room, backlog = unique_room(prosody, "asked"), unique_room(prosody, "backlog")
    alice.create_room(room, "alice")
    bob.join(room, "bob")
    traffic = Traffic([alice, bob], [room], prefix="asked").start()
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
