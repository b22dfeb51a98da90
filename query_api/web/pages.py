"""The server-rendered pages: rooms, a room's day (transcript + presence chart), sign-in (search: ``search_page``).

Pages read the same views and index as the API, through the same caller: a page
shows a room exactly when the API would (else the same 404), and the compliance
role sees what it sees in the API (edits' earlier versions, removed messages,
real JIDs).
"""

from __future__ import annotations

import unicodedata
from calendar import monthrange
from datetime import date, datetime, timedelta
from urllib.parse import quote, urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from markupsafe import escape

from archive.errors import ChatArchiveError, NotFoundError
from archive.times import format_time, parse_day, utcnow

from .. import audit
from ..context import refusal, visible_room
from ..errors import ApiError, bad_parameter, from_archive_error, out_of_range
from ..params import decode_cursor, encode_cursor, line_ref, request_day, request_time
from ..roles import Capability
from ..rooms import describe_rooms, page_of_visible_rooms
from ..transcript import captured, describe, shown, transcripts
from . import auth
from .calendar import active_days, month_grid, month_of, neighbour_days, shift_month
from .room_presence import day_presence
from .text import MAX_MARKED_WORDS, message_html

bp = Blueprint("web", __name__)

DAY_LINES = 500
ROOMS_PAGE = 100
AROUND_LINES = 101


TITLES = {
    400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found", 409: "Not ready",
    410: "Expired", 500: "Server error", 503: "Unavailable",
}  # fmt: skip


@bp.context_processor
def who_is_signed_in() -> dict:
    return {"who": auth.page_caller(required=False), "signed_in": auth.signed_in()}


@bp.after_request
def presession(response):
    return auth.keep_presession(response)


@bp.errorhandler(auth.SignInRequired)
def sign_in_first(_):
    return redirect(url_for("web.signin", next=request.full_path.rstrip("?")), 303)


@bp.errorhandler(ApiError)
def page_error(error: ApiError):
    return error_page(error)


@bp.errorhandler(OverflowError)
def overflow(_):
    return error_page(out_of_range())


@bp.errorhandler(ChatArchiveError)
def archive_error(error: ChatArchiveError):
    return error_page(from_archive_error(error))


def error_page(error: ApiError):
    title = TITLES.get(error.status, "Error")
    body = render_template("web/error.html", status=error.status, title=title, message=error.message)
    return body, error.status, error.headers


def require(capability: Capability):
    who = auth.page_caller()
    if not who.can(capability):
        raise refusal(who, capability)
    return who


# -- sign-in -------------------------------------------------------------------------


@bp.get("/signin")
def signin():
    return render_template("web/signin.html", next=_safe_next(request.args.get("next")), error=None, user=None)


@bp.post("/signin")
def signin_post():
    auth.check_csrf()
    token = request.form.get("token", "").strip()
    user = request.form.get("user", "").strip() or None
    target = _safe_next(request.form.get("next"))
    try:
        session = auth.sign_in(token, user)
    except ApiError as e:
        message = "that token is not valid" if e.status == 401 else e.message
        if e.code == "missing_user":  # the API's words name its header; here it is the form's field
            message = "a site token acts for one of the site's users: name that user in Site user"
        return render_template("web/signin.html", next=target, error=message, user=user), e.status
    response = redirect(target, 303)
    auth.set_cookie(response, auth.SESSION_COOKIE, session, max_age=auth.SESSION_SECONDS)
    response.delete_cookie(auth.PRESESSION_COOKIE, path="/")
    return response


@bp.post("/signout")
def signout():
    auth.check_csrf()
    auth.sign_out()
    response = redirect(url_for("web.signin"), 303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this server (no open redirect). Browsers and Werkzeug drop tabs and line
    breaks from a Location (``/\t/evil.example`` becomes ``//evil.example``) and read ``\\`` as ``/``:
    a target with whitespace, control characters or backslashes is not taken at all."""
    if (
        not target
        or len(target) > 2048
        or not target.startswith("/")
        or target.startswith("//")
        or any(c.isspace() or c == "\\" or unicodedata.category(c)[0] in "CZ" for c in target)
        or urlsplit(target).netloc
    ):
        return url_for("web.search")
    return target


# -- rooms ---------------------------------------------------------------------------


@bp.get("/rooms")
def rooms():
    """A page of the rooms the caller may see, in JID order, ``after`` the last of the page before: each room's
    summary reads the views and the index, so an archive of thousands of rooms is not summarised in one page."""
    who = require(Capability.ROOMS)
    after = request.args.get("after") or None
    names = page_of_visible_rooms(who, after, ROOMS_PAGE + 1)
    summaries = describe_rooms(names[:ROOMS_PAGE], who)
    for summary in summaries:
        last = summary["last_activity"]
        summary["last_activity_text"] = f"{last:%Y-%m-%d %H:%M} UTC" if last else None
        summary["last_activity_utc"] = f"{last:%Y-%m-%d %H:%M:%S} UTC" if last else None
        summary["last_activity_iso"] = format_time(last) if last else None
    following = url_for("web.rooms", after=names[ROOMS_PAGE - 1]) if len(names) > ROOMS_PAGE else None
    return render_template("web/rooms.html", rooms=summaries, next_url=following,
                           first_url=url_for("web.rooms") if after else None)


@bp.get("/rooms/<room>")
def room(room: str):
    who = require(Capability.TRANSCRIPT)
    room = visible_room(who, room)
    at = _at(request.args.get("at"))
    around = line_ref(request.args.get("around"))
    marked = request.args.getlist("hl")[:MAX_MARKED_WORDS]  # the search's words, marked in the hit's line
    context = _context(room, around, request.args.get("t"), who) if around else None
    if context is not None:
        lines = [*context.gaps, *context.before, context.target, *context.after]
        target, day, previous, following = context.target.id, context.target.at.date(), None, None
    else:
        day_text = request.args.get("day") or (request.args.get("t") or "")[:10]
        # No day named: the day of ``at`` (the chart's script keeps it in the address), else the latest.
        day = _day(day_text) if day_text else at.date() if at else _latest_day(room)
        lines, previous, following = _day_page(room, day, request.args.get("cursor"), who)
        target = None
    audit.results(len(lines))
    prev_day, next_day = neighbour_days(*_probes(room), day)
    shown_month = month_of(request.args.get("month"), day)
    if shown_month is None:
        raise bad_parameter("month", "is not a month: YYYY-MM, month 01 to 12, year 0001 to 9999")
    year, month = shown_month
    chart, at_occupants, chart_partial, at_unknown = (None, [], None, None)
    if who.can(Capability.PRESENCE):
        chart, at_occupants, chart_partial, at_unknown = day_presence(room, day, at, who)
    return render_template(
        "web/room.html",
        room=room,
        day=day.isoformat(),
        next_day_of_export=(day + timedelta(days=1)).isoformat(),
        prev_day=prev_day and prev_day.isoformat(),
        next_day=next_day and next_day.isoformat(),
        calendar=_calendar(room, year, month, day),
        lines=[_line(shown(line, who), marked if line.id == target else (), day) for line in lines],
        target=target,
        around=context is not None,
        pending=bool(around) and context is None,
        previous=previous,
        next=following,
        chart=chart,
        chart_partial=chart_partial,
        at=at,
        at_text=at and f"{at:%Y-%m-%d %H:%M:%S} UTC",
        at_occupants=at_occupants,
        at_unknown=at_unknown,
        join_link=xmpp_join_link(room),
        snippet=widget_snippet(room),
    )


def _context(room: str, around: str, hit_time: str | None, who):
    """The lines around ``around``; None if the transcript view has not caught up with it yet (the
    search index commits within a second, the views every ``[projections] commit_interval``): a
    search hit links with its time, so the page can show that day meanwhile."""
    half = AROUND_LINES // 2
    try:
        return transcripts().context(room, around, before=half, after=half, include_originals=who.sees_originals)
    except NotFoundError:
        if not hit_time:
            raise
        _day(hit_time[:10])  # a bad time is a bad request, not a missing line
        return None


def _day_page(room: str, day: date, cursor: str | None, who) -> tuple[list, str | None, str | None]:
    """A page of the day's lines, and the links to the pages before and after it."""
    start, end = parse_day(day.isoformat())
    direction, inner = "forward", None
    if cursor:
        state = decode_cursor(cursor, "day")
        if not isinstance(state, list) or len(state) != 2 or state[0] not in ("f", "b") or not isinstance(state[1], str):
            raise bad_parameter("cursor", "is not a cursor this page issued")
        way, inner = state
        direction = "forward" if way == "f" else "backward"
    page = transcripts().page(
        room, start=start, end=end, cursor=inner, direction=direction, limit=DAY_LINES,
        include_originals=who.sees_originals,
    )  # fmt: skip
    link = lambda c: url_for("web.room", room=room, day=day.isoformat(), cursor=c)  # noqa: E731
    return (
        page.lines,
        link(encode_cursor(["b", page.prev_cursor], "day")) if page.prev_cursor else None,
        link(encode_cursor(["f", page.next_cursor], "day")) if page.next_cursor else None,
    )


def _probes(room: str):
    """The transcript view's lookups the calendar needs: first line in [start, end), last before end (of the lines
    there: not a gap that began before ``start`` and reaches into it, which a page of the range shows first)."""

    def first_line(start, end):
        lines = transcripts().page(room, start=start, end=end, limit=1, include_originals=True, reaching=False).lines
        return lines[0].at if lines else None

    def last_line(end):
        lines = transcripts().page(room, end=end, direction="backward", limit=1, include_originals=True).lines
        return lines[-1].at if lines else None

    return first_line, last_line


def _calendar(room: str, year: int, month: int, day: date) -> dict:
    first = date(year, month, 1)
    last = date(year, month, monthrange(year, month)[1])  # not the next month's first day less one: no year 10000
    active = active_days(_probes(room)[0], first, last)

    def month_link(by: int) -> str:
        return url_for("web.room", room=room, day=day.isoformat(), month="%04d-%02d" % shift_month(year, month, by))

    return {
        "title": f"{first:%B %Y}",
        "weeks": month_grid(year, month, active, day),
        "previous": month_link(-1),
        "next": month_link(1),
        "active": len(active),
    }


def _day(text: str) -> date:
    return request_day("day", text)[0].date()


def _at(text: str | None) -> datetime | None:
    return request_time("at", text) if text else None


def _latest_day(room: str) -> date:
    """The day of the room's latest line (today if it has none)."""
    lines = transcripts().page(room, direction="backward", limit=1).lines
    return lines[-1].at.date() if lines else utcnow().date()


def _line(line, marked=(), day: date | None = None) -> dict:
    """A line for the page's template: its time of day, or (``at_local`` "date") its day and time where that is
    not ``day``'s (a gap that began before the day shown, and reaches into it)."""
    other_day = day is not None and line.at.date() != day
    return {
        "id": line.id,
        "kind": line.kind,
        "at_iso": format_time(line.at),
        "at_text": f"{line.at:%Y-%m-%d %H:%M}" if other_day else f"{line.at:%H:%M:%S}",
        "at_local": "date" if other_day else "time",
        "at_utc": f"{line.at:%Y-%m-%d %H:%M:%S} UTC",
        "nick": line.nick,
        "jid": line.jid,
        "body": line.body,
        "body_html": message_html(line.body, marked) if line.body is not None else None,
        "edited": line.edited,
        "removed": line.removed,
        "removed_how": captured(line.removed.capture) if line.removed is not None else "",
        "versions": [{"body": v.body, "at": f"{v.at:%H:%M:%S}", "how": captured(v.capture)} for v in line.versions],
        "capture": line.capture,
        "text": describe(line) if line.kind != "message" else "",
    }


def xmpp_join_link(room: str) -> str:
    """XEP-0147: opens the room in the visitor's own XMPP client."""
    return "xmpp:" + quote(room, safe="@.-_~") + "?join"


def widget_snippet(room: str) -> str:
    """HTML a site's editor pastes into their own pages: the room's name is escaped for its attribute (an imported
    room's name may hold a quote), not only by the page that shows the snippet."""
    url = url_for("widget.page", room=room, _external=True)
    return (
        f'<iframe src="{escape(url)}#ticket=TICKET" title="{escape(room)}" width="380" height="520" '
        'style="border:0" loading="lazy"></iframe>'
    )
