"""`GET /rooms/{room}/transcript`: the transcript view, as JSON pages, an HTML page or plain text.

Served from the transcript projection only (never the event log). The
compliance role sees the compliance view (original text of removed messages,
earlier versions of edited ones, real JIDs); everyone else the ordinary view.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from flask import Blueprint, Response, render_template_string, request

from archive.times import format_time
from archive.wording import counted
from projections.tables import order_micros
from projections.transcripts.queries import encode_cursor as line_cursor

from . import audit
from .access import Caller, names_a_jid
from .context import api, caller, json_response, visible_room
from .escaping import plain_line
from .errors import bad_parameter
from .params import Params, encode_cursor, line_ref
from .roles import Capability

UTC = ZoneInfo("UTC")

bp = Blueprint("transcript", __name__)

DEFAULT_LIMIT = 100


def transcripts():
    return api().views.transcripts


def shown(line, who: Caller):
    """A line as ``who`` may see it: real JIDs only for compliance."""
    if who.sees_jids:
        return line
    changes = {}
    if line.jid is not None:
        changes["jid"] = None
    if line.removed is not None and line.removed.by_jid is not None:
        changes["removed"] = msgspec.structs.replace(line.removed, by_jid=None)
    if names_a_jid(line.actor):
        changes["actor"] = None
    return msgspec.structs.replace(line, **changes) if changes else line


@bp.get("/rooms/<room>/transcript")
def transcript(room: str) -> Response:
    who = caller(Capability.TRANSCRIPT)
    room = visible_room(who, room)
    params = Params(request.args, ("from", "to", "day", "around", "cursor", "limit", "format", "tz"))
    fmt = params.choice("format", ("json", "html", "text"), "json")
    zone = time_zone(params.text("tz", max_length=64) or api().settings.time_zone)
    limit = params.integer("limit", DEFAULT_LIMIT, minimum=1, maximum=min(1000, api().settings.max_page_size))
    page = read_page(room, params, limit, who.sees_originals)
    lines = [shown(line, who) for line in page["lines"]]
    audit.results(len(lines))
    page["lines"] = lines
    if fmt == "html":
        return Response(render_html(room, page, zone), mimetype="text/html")
    if fmt == "text":
        return Response("".join(text_line(line, zone) + "\n" for line in lines), mimetype="text/plain")
    return json_response({"room": room, **page})


def read_page(room: str, params: Params, limit: int, originals: bool) -> dict:
    """The lines asked for, with cursors that page forward (``next``) and backward (``previous``)."""
    start, end = params.time_range()
    day = params.day("day")
    around = line_ref(params.text("around", max_length=256))
    cursor = params.cursor("transcript")
    if day is not None:
        if start is not None or end is not None:
            raise bad_parameter("day", "give either day or from/to, not both")
        start, end = day
    if around is not None:
        if cursor is not None or start is not None or end is not None:
            raise bad_parameter("around", "cannot be combined with from, to, day or cursor")
        return _around(room, around, limit, originals)
    if cursor is not None:
        inner, direction, start, end = _read_cursor(cursor)
    else:
        # A range reads from its start; no range means the latest lines.
        inner, direction = None, "forward" if start is not None else "backward"
    page = transcripts().page(
        room, start=start, end=end, cursor=inner, direction=direction, limit=limit, include_originals=originals
    )
    bounds = {"s": start and start.isoformat(), "e": end and end.isoformat()}
    return {
        "lines": page.lines,
        "next": encode_cursor({"c": page.next_cursor, "d": "forward", **bounds}, "transcript") if page.next_cursor else None,
        "previous": encode_cursor({"c": page.prev_cursor, "d": "backward", **bounds}, "transcript") if page.prev_cursor else None,
    }


def _around(room: str, ref: str, limit: int, originals: bool) -> dict:
    """``limit`` lines centred on the line ``ref`` (a position or a message id), led by the gap lines that began
    before the first of them and reach into it (``Transcripts.context``'s ``gaps``: beyond ``limit``). ``previous``
    goes on back from the first of the room's lines shown, not from such a gap's: nothing between is lost."""
    before = (limit - 1) // 2
    after = limit - 1 - before
    context = transcripts().context(room, ref, before=before, after=after, include_originals=originals)
    items = [*context.before, context.target, *context.after]
    return {
        "lines": [*context.gaps, *items],
        "target": context.target.id,
        "next": _cursor(items[-1], "forward") if len(context.after) == after else None,
        "previous": _cursor(items[0], "backward") if before and len(context.before) == before else None,
    }


def _read_cursor(cursor: dict) -> tuple[str, str, datetime | None, datetime | None]:
    """(the view's cursor, direction, range start, range end) from one of our cursors."""
    try:
        inner, direction = cursor["c"], cursor["d"]
        start, end = _time_or_none(cursor.get("s")), _time_or_none(cursor.get("e"))
    except (KeyError, TypeError, ValueError):
        raise bad_parameter("cursor", "is not a cursor this API issued") from None
    if not isinstance(inner, str) or direction not in ("forward", "backward"):
        raise bad_parameter("cursor", "is not a cursor this API issued")
    return inner, direction, start, end


def _cursor(line, direction: str) -> str:
    return encode_cursor({"c": line_cursor(order_micros(line.at), line.id), "d": direction, "s": None, "e": None}, "transcript")


def _time_or_none(text) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("naive time in a cursor")
    return moment


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_parameter("tz", "is not a time zone: use an IANA name such as Europe/Berlin or UTC") from None


def zoned_time(moment: datetime, zone: ZoneInfo) -> str:
    """ISO 8601 in ``zone``, with its offset (``Z`` for UTC, as the JSON has it)."""
    text = moment.astimezone(zone).isoformat()
    return text.replace("+00:00", "Z") if zone.key == "UTC" else text


def text_line(line, zone: ZoneInfo = UTC, later: Sequence = ()) -> str:
    """One line as plain text, as a person reads a chat log (the API's text format, the CLI, the text of EML
    and RSMF exports): a line break in what someone said continues on an indented line, so that no one can
    forge a line of their own, and control characters are shown as escapes. ``later``: the line's changes
    after the range an export holds (``projections.ranges.Held``), said after it."""
    return plain_line(_text_line(line, zone) + "".join(f" ({later_change(change, zone)})" for change in later))


def _text_line(line, zone: ZoneInfo) -> str:
    when = zoned_time(line.at, zone)
    kind = line.kind
    if kind == "message":
        if line.removed is not None and line.body is None:
            by = f" by {line.removed.by_nick}" if line.removed.by_nick else ""
            return f"[{when}] * a message by {line.nick} was removed{by}{captured(line.removed.capture, ' ({})')}"
        if line.body is None:  # read from a tombstone, as it was before its removal (``as_at``)
            return f"[{when}] * a message by {line.nick}, its text not kept by the room's archive{captured(line.capture)}"
        edited = " (edited)" if line.edited else ""
        removed = f" (removed{captured(line.removed.capture, ', {}')})" if line.removed is not None else ""
        return f"[{when}] <{line.nick}> {line.body}{edited}{removed}"
    return f"[{when}] * {describe(line)}"


_CAPTURED = {"import": "imported", "backfill": "backfilled from the room's archive",
             "history": "from the room's discussion history"}


def captured(capture: str | None, form: str = " ({})") -> str:
    """How an event not seen live was captured, in ``form``; "" for a live one (None)."""
    return form.format(_CAPTURED.get(capture, capture)) if capture else ""


def later_change(change, zone: ZoneInfo = UTC) -> str:
    """A change made after an export's range (``projections.ranges.LineEvent``), as the export says it."""
    return f"{change.what} later, at {zoned_time(change.at, zone)}{captured(change.capture, ', {}')}"


# How an occupant stopped being in the room (``archive.events.LeaveReason``), after the nick.
_LEFT = {"left": "left", "kicked": "was kicked", "banned": "was banned", "removed": "was removed",
         "room_destroyed": "left as the room was destroyed", "shutdown": "left as the service shut down",
         "lost_sight": "was lost sight of"}


def describe(line) -> str:
    """The sentence for a line that is not a message."""
    kind, nick = line.kind, line.nick or "someone"
    if kind == "joined":
        return f"{nick} joined"
    if kind == "left":
        how = _LEFT.get(line.leave_reason or "left", f"left ({(line.leave_reason or '').replace('_', ' ')})")
        why = f": {line.reason}" if line.reason else ""
        by = f" by {line.actor}" if line.actor else ""
        return f"{nick} {how}{by}{why}"
    if kind == "nick_changed":
        return f"{line.old_nick} is now known as {line.new_nick}"
    if kind == "subject_changed":
        return f"{nick} set the subject to: {line.body}"
    if kind == "role_changed":
        return f"{nick} is now {line.role}"
    if kind == "affiliation_changed":
        return f"{nick} is now {line.affiliation}"
    if kind == "retraction":
        how = "moderated" if line.removed and line.removed.moderated else "retracted"
        return f"{nick} {how} message {line.awaiting}, which the archive does not hold{captured(line.capture)}"
    if kind == "gap":
        return _gap(line)
    return kind.replace("_", " ")


def _gap(line) -> str:
    """A gap with all the evidence its record holds: its span, whether the room's archive was read over it and
    every message it holds archived, how many messages were recovered, and why."""
    end = format_time(line.gap_end) if line.gap_end else "?"
    checked = "verified against the room's archive" if line.gap_verified else "not verified against the room's archive"
    recovered = f"{counted(line.gap_recovered, 'message')} recovered" if line.gap_recovered is not None else ""
    why = f": {line.reason}" if line.reason else ""
    # The listener's explanation says what it recovered, in these words (``ingest.catchup.gap_event``): said once.
    recovered = f"; {recovered}" if recovered and recovered not in why else ""
    return f"the archive may be missing {line.gap_kind or 'events'} until {end} ({checked}{recovered}){why}"


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ room }}: transcript</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{{ url_for('static', filename='transcript.css') }}"></head>
<body><h1>{{ room }}</h1>
<ol class="lines">
{% for line in lines %}<li id="l{{ line.id }}"{% if line.id == target %} class="target"{% endif %}><time datetime="{{ line.when }}">{{ line.when }}</time>
{% if line.kind == "message" %}<span class="nick">{{ line.nick }}</span>: {% if line.body is none %}<span class="removed">message removed</span>{% else %}{{ line.body }}{% endif %}{% if line.edited %} <span class="edited">(edited)</span>{% endif %}
{% else %}<span class="event">{{ line.text }}</span>{% endif %}</li>
{% else %}<li>No lines.</li>{% endfor %}
</ol>
<nav>{% if previous %}<a href="?format=html&amp;cursor={{ previous }}">earlier</a>{% endif %}{% if next %}<a href="?format=html&amp;cursor={{ next }}">later</a>{% endif %}</nav>
</body></html>
"""


def render_html(room: str, page: dict, zone: ZoneInfo = UTC) -> str:
    lines = [
        {"id": l.id, "when": zoned_time(l.at, zone), "kind": l.kind, "nick": l.nick, "body": l.body,
         "edited": l.edited, "text": describe(l) if l.kind != "message" else ""}
        for l in page["lines"]
    ]  # fmt: skip
    return render_template_string(
        _HTML, room=room, lines=lines, next=page["next"], previous=page["previous"], target=page.get("target")
    )
