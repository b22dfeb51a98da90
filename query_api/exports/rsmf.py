"""RSMF 2.0 (Relativity Short Message Format): one room-day as an ``.rsmf`` file.

An ``.rsmf`` is an RFC 5322 message (EML) whose headers summarise the conversation
(``X-RSMF-Version``, begin and end dates, event count, participants, the event
collection id that groups the slices of one conversation), whose text body previews
it, and whose attachment ``rsmf.zip`` holds ``rsmf_manifest.json``: participants,
conversations and events. Message text, edits and removals come from the transcript
lines (the one message model), as a range export holds them (``projections.ranges``): an
edited message carries its ``edits`` in order, a retracted or moderated one ``deleted: true``
with who removed it and why, each with its log position and, if not seen live, how it was
captured (custom fields); changes after the range are custom fields ``after_range_N``, not applied.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import msgspec

from archive.times import format_time, utcnow
from archive.wording import counted
from projections.lines import text_capture
from projections.ranges import Held

from ..escaping import one_line
from ..transcript import describe, later_change, text_line

RSMF_VERSION = "2.0.0"
GENERATOR = "chat-archive"
APPLICATION = "XMPP multi-user chat (chat-archive)"
_EVENT_TYPES = {"message": "message", "joined": "join", "left": "leave"}


def participant_id(line) -> str:
    """A person's id: the bare real JID where the room revealed it, else the occupant (room/nick)."""
    if line.jid:
        return line.jid.split("/", 1)[0]
    return f"{line.room}/{line.nick or '(room)'}"


def manifest(room: str, held: Sequence[Held]) -> dict:
    """The ``rsmf_manifest.json`` content of a room's lines (one slice of the conversation)."""
    participants: dict[str, dict] = {}
    events = []
    for line, later in held:
        pid = participant_id(line)
        if pid not in participants:
            person = {"id": pid, "display": line.nick or room}
            if line.jid:
                person["account_id"] = pid
                person["email"] = pid
            participants[pid] = person
        events.append(_event(room, pid, line, later))
    return {
        "version": RSMF_VERSION,
        "participants": list(participants.values()),
        "conversations": [
            {"id": room, "display": room, "platform": "XMPP", "type": "channel", "participants": list(participants)}
        ],
        "events": events,
    }


def _event(room: str, pid: str, line, later) -> dict:
    event = {
        "id": str(line.id),
        "type": _EVENT_TYPES.get(line.kind, "disclaimer"),
        "participant": pid,
        "conversation": room,
        "timestamp": format_time(line.at),
        "body": (line.body or "") if line.kind == "message" else describe(line),
    }
    custom = [{"name": "log_position", "value": str(line.id)}, *_captured("capture", line.capture)]
    if line.stanza_id:
        custom.append({"name": "stanza_id", "value": line.stanza_id})
    if line.versions:
        texts = [v.body for v in line.versions] + [line.body or ""]
        # Each edit set the next text: the later versions' and the current text's times, positions, captures.
        setters = [(v.at, v.position, v.capture) for v in line.versions[1:]]
        setters.append((line.edited_at or line.at, line.edit_position, text_capture(line)))
        event["edits"] = [
            {"participant": pid, "timestamp": format_time(at), "previous": old, "new": new}
            for old, new, (at, _, _) in zip(texts, texts[1:], setters)
        ]
        for n, (_, position, capture) in enumerate(setters, 1):
            if position is not None:
                custom.append({"name": f"edit_{n}_position", "value": str(position)})
            custom += _captured(f"edit_{n}_capture", capture)
    if line.removed is not None:
        event["deleted"] = True
        removed = line.removed
        custom += [{"name": "deleted_at", "value": format_time(removed.at)},
                   {"name": "deleted_by", "value": removed.by_jid or removed.by_nick or line.nick or ""},
                   {"name": "deleted_how", "value": "moderated" if removed.moderated else "retracted by the author"},
                   {"name": "deleted_position", "value": str(removed.position)},
                   *_captured("deleted_capture", removed.capture)]
        if removed.reason:
            custom.append({"name": "deleted_reason", "value": removed.reason})
    if line.kind == "gap":
        custom += [{"name": "gap_end", "value": format_time(line.gap_end) if line.gap_end else ""},
                   {"name": "gap_kind", "value": line.gap_kind or ""},
                   {"name": "gap_verified", "value": "true" if line.gap_verified else "false"}]
        if line.gap_recovered is not None:
            custom.append({"name": "gap_recovered", "value": str(line.gap_recovered)})
        if line.reason:
            custom.append({"name": "gap_reason", "value": line.reason})
    for n, change in enumerate(later, 1):
        custom.append({"name": f"after_range_{n}", "value": f"{later_change(change)}, log position {change.position}"})
    event["custom"] = custom
    return event


def _captured(name: str, capture: str | None) -> list[dict]:
    """The custom field saying how an event was captured: none for one seen live."""
    return [{"name": name, "value": capture}] if capture else []


def rsmf_file(room: str, held: Sequence[Held], collection_id: str) -> bytes:
    """The ``.rsmf`` (EML) bytes of a room's lines as an export holds them."""
    data = manifest(room, held)
    lines = [line for line, _ in held]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rsmf_manifest.json", msgspec.json.encode(data))
    message = EmailMessage()
    # Headers are one line each (the manifest inside keeps every name exactly): a line break in a nick, or in a
    # room stored before rooms were checked, would fail the whole export, or forge a header.
    # Each name once: one nick is two participants where the room gave its real JID on some lines only.
    names = list(dict.fromkeys(one_line(p["display"]) for p in data["participants"]))
    room, collection_id = one_line(room), one_line(collection_id)
    message["From"] = f"chat-archive <chat-archive@{room.split('@')[-1]}>"
    message["To"] = room
    message["Subject"] = f"{room}: {counted(len(lines), 'event')}"
    message["Date"] = format_datetime(lines[0].at if lines else utcnow())
    message["Message-ID"] = make_msgid("rsmf")
    message["X-RSMF-Version"] = RSMF_VERSION
    message["X-RSMF-Generator"] = GENERATOR
    message["X-RSMF-Application"] = APPLICATION
    message["X-RSMF-EventCount"] = str(len(data["events"]))
    message["X-RSMF-EventCollectionID"] = collection_id
    message["X-RSMF-Participants"] = ", ".join(names)
    if lines:
        message["X-RSMF-BeginDate"] = format_time(lines[0].at)
        message["X-RSMF-EndDate"] = format_time(lines[-1].at)
    message.set_content("".join(text_line(line, later=later) + "\n" for line, later in held) or "(no events)\n")
    message.add_attachment(archive.getvalue(), maintype="application", subtype="zip", filename="rsmf.zip")
    return message.as_bytes()
