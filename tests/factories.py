"""Builders of archive events for tests: every field has a sensible default."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from archive import events as ev

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def make(cls: type[ev.Event], t: float = 0.0, room: str = "lobby@conference.localhost", **fields) -> ev.Event:
    """An event of type ``cls`` that occurred ``t`` seconds after T0."""
    fields.setdefault("occurred_at", at(t))
    fields.setdefault("recorded_at", fields["occurred_at"])
    return cls(room=room, **fields)


def message(t: float = 0.0, body: str = "hello", nick: str = "alice", stanza_id: str | None = None, **fields):
    return make(ev.MessagePosted, t, nick=nick, body=body, stanza_id=stanza_id or f"sid-{t}-{nick}", **fields)
