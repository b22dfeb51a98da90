"""The listener over STARTTLS, verifying the server's certificate against `ca_certs`."""

from __future__ import annotations

import pytest

from archive.application import open_event_store
from chat_archive.prosody import ProsodyServer
from chat_archive.xmpp_users import XmppUsers
from tests.ingest.helpers import running_listener, wait_for_event, wait_joined
from tests.services.prosody import LISTENER, PASSWORD, unique_room, wait_for


@pytest.fixture(scope="module")
def tls_prosody(tmp_path_factory):
    server = ProsodyServer(tmp_path_factory.mktemp("prosody-tls"), admins=(f"{LISTENER}@localhost",), tls=True)
    for user in (LISTENER, "alice"):
        server.register(user, PASSWORD)
    server.start()
    yield server
    server.stop()


def test_the_listener_archives_over_tls_with_a_private_ca(tls_prosody, tmp_path):
    room = unique_room(tls_prosody, "tls")
    with XmppUsers("127.0.0.1", tls_prosody.port, ca_certs=str(tls_prosody.certificate)) as users:
        alice = users.connect("alice@localhost", PASSWORD)
        alice.create_room(room, "alice")
        with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
            settings = {"tls": True, "ca_certs": str(tls_prosody.certificate), "include": (room,)}
            with running_listener(tls_prosody, store, **settings) as listener:
                wait_joined(listener, room)
                alice.say(room, "encrypted hello")
                wait_for_event(store, room, ("message", "alice", "encrypted hello"))


def test_the_listener_refuses_a_server_without_tls_when_tls_is_required(prosody, tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        with running_listener(prosody, store, tls=True) as listener:
            status = listener.listener.status
            wait_for(lambda: status.last_error and "did not offer TLS" in status.last_error, message="the TLS refusal")
            assert not status.connected and listener.joined_rooms() == []


def test_the_listener_refuses_a_certificate_it_cannot_verify(tls_prosody, tmp_path):
    with open_event_store(f"sqlite:///{tmp_path}/events.sqlite") as store:
        with running_listener(tls_prosody, store, tls=True) as listener:  # no ca_certs: system CAs only
            status = listener.listener.status
            wait_for(lambda: status.last_error, message="a connection error")
            assert "CERTIFICATE_VERIFY_FAILED" in status.last_error and not status.connected
