"""The event schema: every type round-trips; bad payloads are rejected clearly."""

from __future__ import annotations

import gc

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive import codec
from archive import events as ev
from archive.errors import EventDecodeError

from tests.factories import T0, make, message

int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
aware_times = st.datetimes(timezones=st.just(__import__("datetime").timezone.utc))


def event_strategy(cls: type[ev.Event]) -> st.SearchStrategy[ev.Event]:
    """Any valid instance of ``cls``: hypothesis fills every field by its annotation."""
    overrides = {
        name: aware_times
        for name in ("occurred_at", "recorded_at", "gap_start", "gap_end")
        if name in cls.__struct_fields__
    }
    return st.builds(cls, **overrides, **int64_fields(cls))


def int64_fields(cls: type) -> dict[str, st.SearchStrategy]:
    """Counts, versions and log positions as msgpack (the store's encoding) holds them: 64-bit integers."""
    kinds = {int: int64, int | None: st.none() | int64}
    return {f.name: kinds[f.type] for f in msgspec.structs.fields(cls) if f.type in kinds}


for _part in (ev.ChainHead, ev.PurgedSpan):  # inside events: a checkpoint's heads, a purge's spans
    st.register_type_strategy(_part, st.builds(_part, **int64_fields(_part)))


any_event = st.one_of([event_strategy(cls) for cls in ev.EVENT_TYPES.values()])


@given(any_event)
def test_every_event_round_trips_through_msgpack_and_json(event):
    assert codec.from_msgpack(codec.to_msgpack(event)) == event
    assert codec.from_json(codec.to_json(event)) == event


@given(st.lists(any_event, max_size=4))
def test_the_stores_bytearray_encoding_is_the_msgpack_encoding(events):
    assert codec.to_msgpack_arrays(events) == [codec.to_msgpack(event) for event in events]


def test_every_event_type_is_in_the_union_and_documented():
    assert set(ev.EVENT_TYPES) == {cls.__struct_config__.tag for cls in ev.ArchiveEvent.__args__}
    for cls in ev.EVENT_TYPES.values():
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} has no docstring"
        # The union is Event's direct subclasses: an event type deriving from another, or from a base between
        # them and Event, would be left out of it without this.
        assert not cls.__subclasses__() and isinstance(cls.__struct_config__.tag, str), cls.__name__


def test_json_carries_the_type_tag_and_utc_times():
    event = make(ev.OccupantJoined, nick="alice", role="participant")
    data = msgspec.json.decode(codec.to_json(event))
    assert data["type"] == "occupant_joined"
    assert data["occurred_at"] == "2024-05-01T12:00:00Z"


def test_unknown_type_is_rejected_with_a_clear_error():
    with pytest.raises(EventDecodeError, match="Invalid value 'room_exploded'") as refused:
        codec.from_json(b'{"type":"room_exploded","room":"r","occurred_at":"2024-05-01T12:00:00Z","recorded_at":"2024-05-01T12:00:00Z"}')
    # Whoever writes events by hand (an import) learns the types there are, not only that theirs is not one.
    assert "the types are: room_discovered, room_created, occupant_joined" in str(refused.value)
    assert "message_posted" in str(refused.value)


@pytest.mark.parametrize(
    "payload, complaint",
    [
        (b"not json", "malformed"),
        (b'{"type":"message_posted","room":"r"}', "missing required field"),
        (b'{"type":"occupant_joined","room":"r","nick":"a","occurred_at":"2024-05-01T12:00:00",'
         b'"recorded_at":"2024-05-01T12:00:00Z"}', "timezone"),
        (b'{"type":"occupant_left","room":"r","nick":"a","reason":"vanished","occurred_at":"2024-05-01T12:00:00Z",'
         b'"recorded_at":"2024-05-01T12:00:00Z"}', "Invalid enum value"),
        (b'{"room":"r"}', "missing required field `type`"),
    ],
)
def test_malformed_payloads_are_rejected(payload, complaint):
    with pytest.raises(EventDecodeError, match=f"(?i){complaint}"):
        codec.from_json(payload)


def test_garbage_msgpack_is_rejected():
    with pytest.raises(EventDecodeError):
        codec.from_msgpack(b"\xc1\x00garbage")


def test_events_decoded_together_are_those_decoded_one_by_one_and_garbage_among_them_is_rejected():
    events = [message(1, "hi", "ann"), make(ev.OccupantJoined, 2, nick="bob")]
    states = codec.to_msgpack_list(events)
    together = b"\x92" + b"".join(states)  # a msgpack array of the two stored states
    assert codec.from_msgpack_array(together) == list(map(codec.from_msgpack, states)) == events
    with pytest.raises(EventDecodeError):
        codec.from_msgpack_array(b"\x92" + states[0] + b"\xc1\x00garbage")


def test_an_old_event_without_a_newer_optional_field_still_decodes():
    # Schema evolution rule 2: new fields have defaults, so old payloads decode.
    old = b'{"type":"message_posted","room":"r","nick":"a","body":"hi","occurred_at":"2024-05-01T12:00:00Z","recorded_at":"2024-05-01T12:00:00Z"}'
    event = codec.from_json(old)
    assert event.thread is None and event.capture is ev.Capture.LIVE and event.occurred_at == T0


class TestIdempotencyKey:
    def test_the_rooms_stanza_id_identifies_a_message_however_it_was_captured(self):
        live = make(ev.MessagePosted, 0, nick="a", body="hi", stanza_id="s1")
        replayed = make(ev.MessagePosted, 3, nick="a", body="hi", stanza_id="s1", capture=ev.Capture.HISTORY)
        assert codec.idempotency_key(live) == codec.idempotency_key(replayed) == "sid:lobby@conference.localhost:s1"

    def test_the_same_stanza_id_in_two_rooms_is_two_messages(self):
        a = make(ev.MessagePosted, nick="a", body="hi", stanza_id="s1", room="a@c")
        b = make(ev.MessagePosted, nick="a", body="hi", stanza_id="s1", room="b@c")
        assert codec.idempotency_key(a) != codec.idempotency_key(b)

    def test_without_stanza_id_the_client_id_and_content_identify_a_message(self):
        live = make(ev.MessagePosted, 0, nick="a", body="hi", message_id="m1")
        replayed = make(ev.MessagePosted, 2, nick="a", body="hi", message_id="m1", capture=ev.Capture.HISTORY)
        other = make(ev.MessagePosted, 0, nick="a", body="hi", message_id="m2")
        assert codec.idempotency_key(live) == codec.idempotency_key(replayed) != codec.idempotency_key(other)

    def test_other_events_are_identified_by_their_whole_content_but_not_recording(self):
        first = make(ev.OccupantJoined, 0, nick="a")
        again = make(ev.OccupantJoined, 0, nick="a", recorded_at=T0.replace(hour=13), capture=ev.Capture.IMPORT)
        later = make(ev.OccupantJoined, 1, nick="a")
        assert codec.idempotency_key(first) == codec.idempotency_key(again) != codec.idempotency_key(later)


@given(any_event)
def test_events_and_their_records_are_not_tracked_by_the_garbage_collector(event):
    """They can be in no reference cycle; tracked, every full collection walked each event a batch holds."""
    assert not gc.is_tracked(codec.from_msgpack(codec.to_msgpack(event)))
    assert not gc.is_tracked(ev.Recorded(1, event))


@pytest.mark.parametrize("room, why", [
    ("lobby@conference.localhost", None),
    ("team+1@conference.localhost", None),
    ("café@conférence.example", None),
    ("a\r\nX-Injected: 1@conference.localhost", "'\\r'"),
    ("news\x1b[2J@conference.localhost", "'\\x1b'"),
    ("evil\u202e@conference.localhost", "'\\u202e'"),
    ("two words@conference.localhost", "' '"),
    ("lobby", "not a room's JID"),
    ("lobby@", "not a room's JID"),
    ("lobby@conference.localhost/alice", "not a room's JID"),
    ("", "not a room's JID"),
    (ev.COMPLIANCE_STREAM, "not a room's JID"),
    (ev.AUDIT_STREAM, "not a room's JID"),
])
def test_a_room_is_a_bare_jid_without_line_breaks_or_control_characters(room, why):
    problem = ev.room_problem(room)
    assert problem is None if why is None else why in problem
    assert ev.misplaced(message(0, room=room)) == (problem and f"a message_posted event names a room: {problem}")


def test_the_archives_own_records_go_to_their_own_streams_only():
    hold = make(ev.LegalHoldPlaced, 0, room=ev.COMPLIANCE_STREAM, hold_id="h", case="c")
    assert ev.misplaced(hold) is None
    assert "belongs to the stream chat-archive:compliance" in ev.misplaced(msgspec.structs.replace(hold, room="lobby@x.org"))
    read = make(ev.ContentRead, 0, room=ev.AUDIT_STREAM, request_id="r", via="cli", endpoint="search")
    assert "audit trail" in ev.misplaced(read)
