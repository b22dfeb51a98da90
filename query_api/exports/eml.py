"""A room-day as one EML message: the transcript as its text, the room and day in its headers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from archive.wording import counted
from projections.ranges import Held

from ..escaping import one_line
from ..transcript import text_line


def eml_file(room: str, day: date, held: Sequence[Held]) -> bytes:
    """A room-day's lines as an export holds them (``projections.ranges``), each changed after its range said so."""
    # Headers are one line each: a room stored with a line break in its name (an import before rooms were
    # checked) would fail the whole export, or forge a header.
    room = one_line(room)
    message = EmailMessage()
    message["From"] = f"chat-archive <chat-archive@{room.split('@')[-1]}>"
    message["To"] = room
    message["Subject"] = f"{room} on {day.isoformat()} ({counted(len(held), 'event')})"
    message["Date"] = format_datetime(datetime.combine(day, time(), timezone.utc))
    message["Message-ID"] = make_msgid("chat-archive")
    message["X-Chat-Archive-Room"] = room
    message["X-Chat-Archive-Day"] = day.isoformat()
    message["X-Chat-Archive-Events"] = str(len(held))
    message.set_content("".join(text_line(line, later=later) + "\n" for line, later in held) or "(no events)\n")
    return message.as_bytes()
