"""The listener's status, in a small JSON file another process (``chat-archive status``) can read.

Written atomically (temporary file + rename) about once a second while the
listener runs, so ``updated_at`` doubles as a heartbeat: a restarted listener
knows until when its predecessor was watching each room.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import msgspec

from archive.errors import ChatArchiveError
from archive.health import PartHealth
from archive.times import format_time

from .settings import XmppSettings


class ListenerStatus(msgspec.Struct, kw_only=True):
    jid: str
    pid: int
    host: str = ""
    started_at: datetime
    updated_at: datetime
    connected: bool = False
    connected_since: datetime | None = None
    last_event_at: datetime | None = None  # newest event handed to the store
    stored_until: datetime | None = None  # every event seen before this time is in the store
    events_written: int = 0
    rooms_joined: list[str] = []
    rooms_refused: dict[str, str] = {}  # room -> why it cannot be entered (or was left)
    last_error: str | None = None
    stopped: bool = False
    write_queue: int = 0  # events waiting for the store
    input_paused: bool = False  # reading from the server paused until the write queue drains
    parts: dict[str, PartHealth] = {}  # each part of the process (writer, projections, indexer): failing or well


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


def describe(status: ListenerStatus | None) -> list[str]:
    """Human-readable lines for ``chat-archive status``."""
    if status is None:
        return ["listener: no status written yet (not started with this config?)"]

    def when(moment: datetime | None) -> str:
        return format_time(moment) if moment else "never"

    state = "stopped" if status.stopped else ("connected" if status.connected else "disconnected")
    lines = [
        f"listener: {status.jid} (pid {status.pid}) {state}, status updated {when(status.updated_at)}",
        f"connected since: {when(status.connected_since) if status.connected else '-'}",
        f"last event: {when(status.last_event_at)}; events written: {status.events_written}",
        f"rooms joined ({len(status.rooms_joined)}): {', '.join(status.rooms_joined) or '-'}",
    ]
    for room, reason in sorted(status.rooms_refused.items()):
        lines.append(f"room not entered: {room}: {reason}")
    if status.last_error:
        lines.append(f"last error: {status.last_error}")
    return lines
