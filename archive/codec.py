"""Encoding of archive events: msgpack for storage, JSON for people and the API."""

from __future__ import annotations

import hashlib

import msgspec

from .errors import EventDecodeError
from .events import EVENT_TYPES, ArchiveEvent, Event, MessageCorrected, MessagePosted, MessageRetracted

_msgpack_encoder = msgspec.msgpack.Encoder()
_msgpack_decoder = msgspec.msgpack.Decoder(ArchiveEvent)
_msgpack_array_decoder = msgspec.msgpack.Decoder(list[ArchiveEvent])
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(ArchiveEvent)


# The encoder's own method: no Python call around it for every stored event.
to_msgpack = _msgpack_encoder.encode
_msgpack_into = _msgpack_encoder.encode_into


def to_msgpack_list(events: list[Event]) -> list[bytes]:
    return list(map(to_msgpack, events))


# What a stored state's buffer is made from, a copy of it (events are ~300 bytes): encoding into an empty one grows
# it twice or more, and the encoder cuts it to the state's length anyway (~700 instructions an event of ~4,600,
# callgrind); a copy costs ~300 fewer than calling the type.
_STATE_BUFFER = bytearray(512)


def to_msgpack_arrays(events: list[Event]) -> list[bytearray]:
    """The events as ``to_msgpack`` encodes them, each in a bytearray of its own (see
    ``archive.sqlite_recorder``: sqlite3 binds a bytearray cheaper than bytes)."""
    buffers = [_STATE_BUFFER[:] for _ in events]
    for event, buffer in zip(events, buffers):
        _msgpack_into(event, buffer)
    return buffers


def from_msgpack(data: bytes) -> Event:
    try:
        return _msgpack_decoder.decode(data)
    except msgspec.DecodeError as e:
        raise EventDecodeError(f"not a valid archive event: {e}") from e


def from_msgpack_array(data: bytes) -> list[Event]:
    """The events of a msgpack array of stored states (``EventStore.read_log_page``), in one decoder call:
    a projection decodes every event of the log."""
    try:
        return _msgpack_array_decoder.decode(data)
    except msgspec.DecodeError as e:
        raise EventDecodeError(f"not a valid archive event: {e}") from e


def to_json(event: Event) -> bytes:
    return _json_encoder.encode(event)


def from_json(data: bytes | str) -> Event:
    try:
        return _json_decoder.decode(data)
    except msgspec.DecodeError as e:
        # JSON is what people write by hand (an import): a type that is none says which there are.
        types = f"; the types are: {', '.join(EVENT_TYPES)}" if str(e).endswith("at `$.type`") else ""
        raise EventDecodeError(f"not a valid archive event: {e}{types}") from e


def event_from_builtins(data: object) -> Event:
    """Validate an already-parsed mapping (e.g. from TOML or a form) into an event."""
    try:
        return msgspec.convert(data, ArchiveEvent)
    except msgspec.ValidationError as e:
        raise EventDecodeError(f"not a valid archive event: {e}") from e


# The events keyed by their stanza-id when they carry one (``idempotency_key``).
_STANZA_ID_KEYED = frozenset({MessagePosted, MessageCorrected, MessageRetracted})
# A fresh SHA-256 copied, not made (see ``archive.chain``).
_SHA256 = hashlib.sha256()


def idempotency_keys(events: list[Event]) -> list[str]:
    """Each event's ``idempotency_key``: a batch's, most of them by stanza-id in one comprehension, without a
    call an event (~800 instructions an event of ~5,000, callgrind)."""
    return [f"sid:{e.room}:{e.stanza_id}" if type(e) in _STANZA_ID_KEYED and e.stanza_id else _hashed_key(e)
            for e in events]


def idempotency_key(event: Event) -> str:
    """The key under which an event is stored at most once.

    - A message, correction or moderation that carries the room's stanza-id
      (XEP-0359): ``sid:<room>:<stanza-id>``. The room issues it once per
      message, so history replay, MAM backfill and live capture of the same
      stanza all collapse onto it.
    - Fallback for a message or correction without a stanza-id but with the
      client's ``id`` attribute: room, type, sender, id and body. Clients make
      ids unique per message, while the time differs between live capture
      (receive time) and replay (delay stamp), so time is left out.
    - Everything else: a hash of the whole event except ``recorded_at`` and
      ``capture``, i.e. the same fact observed twice is stored once.
    """
    return idempotency_keys([event])[0]


def _hashed_key(event: Event) -> str:
    """The key of an event without a stanza-id (``idempotency_key``)."""
    if isinstance(event, (MessagePosted, MessageCorrected)) and event.message_id:
        parts = (event.room, type(event).__name__, event.nick, event.message_id, event.body)
    else:
        fields = msgspec.structs.asdict(event)
        fields.pop("recorded_at")
        fields.pop("capture")
        parts = (type(event).__name__, fields)
    digest = _SHA256.copy()
    digest.update(msgspec.msgpack.encode(parts))
    return f"h:{digest.hexdigest()[:40]}"
