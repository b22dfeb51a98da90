"""The listener's status, in a small JSON file another process (``chat-archive status``) can read, and in the store.

Written atomically (temporary file + rename) about once a second while the
listener runs (into the store every ``keep_interval``), so ``updated_at`` doubles as a heartbeat: a restarted listener
knows until when its predecessor was watching each room, and ``assess`` tells
a listener killed without a word (kill -9: the file says running, but it is
stale, or its process is gone) from one that runs. The same status is kept in
the store as the note of the listener's lease (``archive.lease``), where a
listener taking over on another host, and the API on every host, read it:
the file is of one host only, and may be a listener's that ran there long ago
(``latest_status`` tells them apart).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from archive.errors import ChatArchiveError
from archive.health import PartHealth
from archive.lease import last_note
from archive.store import EventStore
from archive.times import format_time

from .clock import skew_problem
from .settings import XmppSettings


LEASE = "listener"  # the store's lease a listener holds while it runs; its note is the listener's last status


class ListenerStatus(msgspec.Struct, kw_only=True):
    jid: str
    pid: int
    host: str = ""
    holder: str = ""  # the listener's holder of the store's lease: whose status it is (missing in older files)
    started_at: datetime
    updated_at: datetime
    connected: bool = False
    connected_since: datetime | None = None
    last_event_at: datetime | None = None  # newest event handed to the store
    stored_until: datetime | None = None  # every event seen before this time is in the store
    events_written: int = 0
    rooms_joined: list[str] = []
    # room -> since when nobody watches it (lost, being rejoined, refused): the next start's gap begins there.
    # Missing in files of older versions: their rooms not joined fall back to their last event.
    rooms_away: dict[str, datetime] = {}
    rooms_refused: dict[str, str] = {}  # room -> why it cannot be entered (or was left)
    last_error: str | None = None
    stopped: bool = False
    write_queue: int = 0  # events waiting for the store
    input_paused: bool = False  # reading from the server paused until the write queue drains
    # The XMPP server's clock less the listener's, in seconds, asked at the last connect (``ingest.clock``);
    # None with ``clock_unknown`` saying why (a server without XEP-0202), or not connected yet.
    clock_offset: float | None = None
    clock_unknown: str | None = None
    parts: dict[str, PartHealth] = {}  # each part of the process (writer, projections, indexer): failing or well


STALE_AFTER = timedelta(seconds=10)  # the status is written every second while the listener runs
BEHIND_AFTER = timedelta(seconds=30)  # events seen this long ago and not yet stored: behind


def keep_interval(lease_seconds: float) -> float:
    """Seconds between the listener's status writes into the store (and at once when its rooms change): a sixth of
    its lease, as its renewals, but at most half ``STALE_AFTER``, so that a reader on another host never takes a
    running listener for a dead one."""
    return min(lease_seconds / 6, STALE_AFTER.total_seconds() / 2)


class Liveness(msgspec.Struct, kw_only=True):
    state: str  # not-started | running | stopped | dead | disconnected | behind | skewed (clocks apart)
    ok: bool
    problems: list[str] = []


def assess(
    status: ListenerStatus | None, now: datetime, *, host: str, alive: Callable[[int], bool]
) -> Liveness:
    """Whether the listener runs and keeps up, from its last status (pure: ``alive(pid)`` asks the OS)."""
    if status is None:
        return Liveness(state="not-started", ok=False, problems=["no listener status written (never started here?)"])
    if status.stopped:
        return Liveness(state="stopped", ok=False, problems=[f"the listener stopped at {format_time(status.updated_at)}"])
    silent = now - status.updated_at
    if silent > STALE_AFTER or (status.host == host and not alive(status.pid)):
        return Liveness(state="dead", ok=False, problems=[
            f"the listener (pid {status.pid} on {status.host or 'unknown host'}) is gone: its status was last "
            f"written at {format_time(status.updated_at)} ({silent.total_seconds():.0f} s ago) and it did not stop "
            "cleanly (killed?)"
        ])  # fmt: skip
    if not status.connected:
        why = f": {status.last_error}" if status.last_error else ""
        return Liveness(state="disconnected", ok=False, problems=[f"not connected to the XMPP server{why}"])
    problems = [
        f"{name} failing since {format_time(part.since)} ({part.attempts} attempts): {part.error}"
        for name, part in sorted(status.parts.items()) if not part.ok and part.since
    ]  # fmt: skip
    if status.input_paused:
        problems.append(f"reading from the server paused: {status.write_queue} events wait for the store")
    if status.stored_until and status.updated_at - status.stored_until > BEHIND_AFTER:
        problems.append(f"events seen since {format_time(status.stored_until)} are not all stored yet")
    skew = skew_problem(status.clock_offset)
    state = "behind" if problems else "skewed" if skew else "running"
    problems += [skew] if skew else []
    return Liveness(state=state, ok=not problems, problems=problems)


def unwatched(status: ListenerStatus | None) -> dict[str, datetime]:
    """Since when each room a run watched, or still owed a gap, has gone unwatched, as its last status says.

    A room it had joined was watched until ``stored_until``; a room it was away from, since its gap began.
    A run that stops before taking a room up again passes this on in its own status, however many restarts it takes.
    """
    if status is None:
        return {}
    joined = {room: status.stored_until for room in status.rooms_joined} if status.stored_until else {}
    return {**joined, **status.rooms_away}


def latest_status(in_file: ListenerStatus | None, in_store: ListenerStatus | None) -> ListenerStatus | None:
    """The listener's last status, from this host's status file and the store's (``stored_status``).

    The store's is the last lease holder's, whichever host it ran on. A file of the same holder is the newer where
    it was written later (the store refused the last writes: a stop with the store out of reach); a file of another
    holder is an earlier listener's of this host (another has held the lease since, here or elsewhere), and its
    rooms away and watched until are long past: ignored. A store without one (written by earlier versions only,
    whose files name no holder) leaves the file.
    """
    if in_store is None:
        return in_file
    if in_file is None or in_file.holder != in_store.holder:
        return in_store
    return in_file if in_file.updated_at > in_store.updated_at else in_store


def last_status(in_file: ListenerStatus | None, store: EventStore) -> tuple[ListenerStatus | None, str | None]:
    """``latest_status`` of this host's file and the store's; or None and why the store's cannot be read
    (``stored_status``): then the file cannot be told to be the last holder's either, and there is no status (for the
    listener starting as for every page of the API). ``StoreError`` if the store is not read."""
    in_store, unread = stored_status(store)
    return (None, unread) if unread else (latest_status(in_file, in_store), None)


def stored_status(store: EventStore) -> tuple[ListenerStatus | None, str | None]:
    """The status the last listener to hold the store's lease left there (``StoreLease.write_note``), None if none
    did; or None and why it cannot be read: one this version cannot decode (the listener of another version)."""
    note = last_note(store, LEASE)
    if note is None:
        return None, None
    try:
        return msgspec.json.decode(note[1], type=ListenerStatus), None
    except msgspec.DecodeError as e:
        return None, f"the listener status in the store is not valid (written by {note[0]}; another version?): {e}"


def status_path(settings: XmppSettings) -> Path:
    return Path(settings.status_file)


def write_status(path: Path, status: ListenerStatus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.encode(status))
    os.replace(tmp, path)


def read_status(path: Path) -> ListenerStatus | None:
    """The last status written at ``path``, or None if there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ChatArchiveError(f"cannot read listener status {path}: {e}") from e
    try:
        return msgspec.json.decode(data, type=ListenerStatus)
    except msgspec.DecodeError as e:
        raise ChatArchiveError(f"listener status {path} is not valid: {e}") from e


def describe(status: ListenerStatus | None, liveness: Liveness | None = None) -> list[str]:
    """Human-readable lines for ``chat-archive status``. A listener gone (stopped, or dead by ``liveness``) is said
    so, and what its last status held (its rooms, its queue) is said as of when it was written: a stopped or killed
    listener is connected to nothing and watches no room now."""
    if status is None:
        return ["listener: no status written yet (not started with this config?)"]

    def when(moment: datetime | None) -> str:
        return format_time(moment) if moment else "never"

    gone = status.stopped or (liveness is not None and liveness.state == "dead")
    state = ("stopped" if status.stopped else "dead" if gone else "connected" if status.connected else "disconnected")
    as_of = f" as of {when(status.updated_at)}" if gone else ""
    was_connected = f" (connected since {when(status.connected_since)}{as_of})" if gone and status.connected else ""
    lines = [
        f"listener: {status.jid} (pid {status.pid}) {state}, status updated {when(status.updated_at)}",
        f"write queue{as_of}: {status.write_queue} events"
        + (" (reading from the server paused)" if status.input_paused else ""),
        f"connected since: {when(status.connected_since) if status.connected and not gone else '-'}{was_connected}",
        f"last event: {when(status.last_event_at)}; events written: {status.events_written}",
        f"rooms joined{as_of} ({len(status.rooms_joined)}): {', '.join(status.rooms_joined) or '-'}"
        + ("; none watched since" if gone and status.rooms_joined else ""),
    ]
    for room, since in sorted(status.rooms_away.items()):
        lines.append(f"room not watched since {when(since)}: {room} (the gap is recorded when it is joined again)")
    for room, reason in sorted(status.rooms_refused.items()):
        lines.append(f"room not entered: {room}: {reason}")
    if status.clock_offset is not None:
        side = "behind" if status.clock_offset >= 0 else "ahead of"
        lines.append(f"clock: the listener's is {abs(status.clock_offset):.0f} s {side} the server's (XEP-0202)")
    elif status.clock_unknown:
        lines.append(f"clock offset to the server unknown: {status.clock_unknown}")
    if status.last_error:
        lines.append(f"last error: {status.last_error}")
    return lines
