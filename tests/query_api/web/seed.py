"""A day in two rooms for the page tests: presence with statuses, an archive gap, an edit,
a moderation, and a message (and a nick) that try to inject script."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from archive import events as ev

DAY = datetime(2024, 5, 1, tzinfo=timezone.utc)
# Not on the test's Prosody, whose rooms the server's listener archives alongside.
LOBBY = "lobby@conference.example.org"
SECRET = "secret@conference.example.org"
XSS_BODY = '<script>window.xssFired = 1</script><img src="x" onerror="window.xssFired = 2">'
XSS_NICK = "<b>eve</b>"
EDITED = "deploy looks good on staging"
CORRECTED = "deploy looks good on staging and prod"
RETRACTED = "oops, the deploy password is hunter2"
DASHBOARDS = "https://grafana.example.org/d/deploy?from=now-1h"
UNSAFE_LINK = "javascript:window.xssFired=3"


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def _e(cls, hours: float, room: str = LOBBY, **fields):
    return cls(room=room, occurred_at=at(hours), recorded_at=at(hours), **fields)


def joined(hours, nick, **fields):
    return _e(ev.OccupantJoined, hours, nick=nick, jid=f"{nick.strip('<>/b')}@localhost/pc", **fields)


def left(hours, nick):
    return _e(ev.OccupantLeft, hours, nick=nick)


def show(hours, nick, value):
    return _e(ev.PresenceChanged, hours, nick=nick, show=value)


def said(hours, nick, body, sid, **fields):
    return _e(ev.MessagePosted, hours, nick=nick, body=body, stanza_id=sid, **fields)


def events() -> list[ev.Event]:
    return [
        joined(6, "alice"),
        _e(ev.SubjectChanged, 6.02, subject="Release day", nick="alice"),
        said(6.1, "alice", "Morning! The deploy of the new search index starts at nine", "s1"),
        joined(6.5, "bob"),
        said(6.6, "bob", f"I'll watch the deploy dashboards ({DASHBOARDS}), not {UNSAFE_LINK}", "s2"),
        joined(7, "carol"),
        said(7.2, "carol", EDITED, "s3", message_id="m3"),
        _e(ev.MessageCorrected, 7.25, nick="carol", replaces_id="m3", body=CORRECTED, stanza_id="s3c"),
        show(9, "bob", "away"),
        joined(10, "dave", show="dnd"),
        joined(10.2, XSS_NICK),
        said(10.3, XSS_NICK, XSS_BODY, "s4"),
        left(11, "carol"),
        show(12, "bob", None),
        said(12.5, "bob", RETRACTED, "s5"),
        _e(ev.MessageRetracted, 12.52, target_id="s5", moderated=True, by_nick="alice", reason="secret", stanza_id="s5r"),
        left(14, "dave"),
        left(14.5, XSS_NICK),
        _e(ev.ArchiveGap, 16, gap_start=at(15), gap_end=at(16), kind=ev.GapKind.PRESENCE,
           explanation="the listener was disconnected"),
        show(17, "alice", "xa"),
        said(17.5, "alice", "deploy finished, thanks all", "s6"),
        left(18, "bob"),
        joined(20, "carol"),
        said(20.5, "carol", "late check: the deploy is healthy", "s7"),
        joined(8, "alice", room=SECRET),
        said(8.5, "alice", "secret deploy plans for the merger", "x1", room=SECRET),
    ]  # fmt: skip
