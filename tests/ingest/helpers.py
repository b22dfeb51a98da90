"""Helpers for the listener's integration tests: a running listener, and events in short form."""

from __future__ import annotations

from contextlib import contextmanager

from archive import events as ev
from ingest.listener import start_listener
from tests.services.prosody import listener_settings, wait_for


def short(event: ev.Event) -> tuple:
    """An event as a short tuple, for comparing whole sequences in one assert."""
    match event:
        case ev.RoomDiscovered():
            return ("discovered",)
        case ev.OccupantJoined():
            return ("joined", event.nick)
        case ev.OccupantLeft():
            return ("left", event.nick, event.reason.value)
        case ev.PresenceChanged():
            return ("presence", event.nick, event.show, event.status)
        case ev.NickChanged():
            return ("nick", event.old_nick, event.new_nick)
        case ev.RoleChanged():
            return ("role", event.nick, event.role)
        case ev.AffiliationChanged():
            return ("affiliation", event.nick or event.jid, event.affiliation)
        case ev.SubjectChanged():
            return ("subject", event.nick, event.subject)
        case ev.MessagePosted():
            return ("message", event.nick, event.body)
        case ev.MessageCorrected():
            return ("corrected", event.nick, event.body)
        case ev.MessageRetracted():
            return ("retracted", event.target_id, event.moderated)
        case ev.RoomDestroyed():
            return ("destroyed", event.reason)
        case ev.ArchiveGap():
            return ("gap", event.kind.value)
    return (type(event).__name__,)


def room_events(store, room: str) -> list[ev.Event]:
    return [record.event for record in store.read_room(room)]


def room_summary(store, room: str) -> list[tuple]:
    return [short(event) for event in room_events(store, room)]


def wait_for_event(store, room: str, *expected: tuple, timeout: float = 10.0) -> list[tuple]:
    """Wait until the room's archive holds every ``expected`` short tuple; return the whole summary."""
    return wait_for(
        lambda: (summary := room_summary(store, room)) and all(e in summary for e in expected) and summary,
        timeout,
        message=f"{expected} in the archive of {room}",
    )


@contextmanager
def running_listener(server, store, status_file=None, **overrides):
    handle = start_listener(listener_settings(server, **overrides), store, status_file=status_file)
    try:
        yield handle
    finally:
        handle.stop()


def wait_joined(handle, room: str, timeout: float = 10.0) -> None:
    wait_for(lambda: room in handle.joined_rooms(), timeout, message=f"the listener to join {room}")
