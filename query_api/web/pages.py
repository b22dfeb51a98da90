"""The server-rendered pages: search, rooms, a room's day (transcript + presence chart), sign-in.

Pages read the same views and index as the API, through the same caller: a page
shows a room exactly when the API would (else the same 404), and the compliance
role sees what it sees in the API (edits' earlier versions, removed messages,
real JIDs).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import quote, urlencode

from flask import Blueprint, redirect, render_template, request, url_for
from markupsafe import Markup

from archive.errors import ChatArchiveError, InvalidQueryError
from archive.times import format_time, parse_day, parse_time, utcnow

from ..context import api, visible_room
from ..errors import ApiError, bad_parameter, forbidden, from_archive_error
from ..roles import Capability
from ..rooms import describe_rooms
from ..search import index as search_index
from ..search import scope_of
from ..transcript import describe, shown, transcripts
from . import auth
from .presence_chart import PresenceSpan, occupants_at, presence_svg

bp = Blueprint("web", __name__)

DAY_LINES = 500
AROUND_LINES = 101
SEARCH_PAGE = 20


TITLES = {400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found", 503: "Unavailable"}


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
        raise forbidden(f"the {who.role.value} role may not use these pages")
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
        session_id = auth.sign_in(token, user)
    except ApiError as e:
        message = "that token is not valid" if e.status == 401 else e.message
        return render_template("web/signin.html", next=target, error=message, user=user), e.status
    response = redirect(target, 303)
    auth.set_cookie(response, auth.SESSION_COOKIE, session_id)
    response.delete_cookie(auth.PRESESSION_COOKIE, path="/")
    return response


@bp.post("/signout")
def signout():
    auth.check_csrf()
    auth.sessions().drop(request.cookies.get(auth.SESSION_COOKIE))
    response = redirect(url_for("web.signin"), 303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this server (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("web.search")
    return target


# -- rooms ---------------------------------------------------------------------------


@bp.get("/rooms")
def rooms():
    who = require(Capability.ROOMS)
    names = sorted(who.visible(api().known_rooms()))
    summaries = describe_rooms(names, who)
    for summary in summaries:
        last = summary["last_activity"]
        summary["last_activity_text"] = f"{last:%Y-%m-%d %H:%M} UTC" if last else None
    return render_template("web/rooms.html", rooms=summaries)


@bp.get("/rooms/<room>")
def room(room: str):
    who = require(Capability.TRANSCRIPT)
    visible_room(who, room)
    around = request.args.get("around")
    if around:
        half = AROUND_LINES // 2
        context = transcripts().context(room, around, before=half, after=half, include_originals=who.sees_originals)
        lines = [*context.before, context.target, *context.after]
        target, day, previous, following = context.target.id, context.target.at.date(), None, None
    else:
        day_text = request.args.get("day")
        day = _day(day_text) if day_text else _latest_day(room)
        lines, previous, following = _day_page(room, day, request.args.get("cursor"), who)
        target = None
    chart, at, at_occupants = (None, None, [])
    if who.can(Capability.PRESENCE):
        chart, at, at_occupants = _presence(room, day, request.args.get("at"))
    return render_template(
        "web/room.html",
        room=room,
        day=day.isoformat(),
        prev_day=(day - timedelta(days=1)).isoformat(),
        next_day=(day + timedelta(days=1)).isoformat(),
        lines=[_line(shown(line, who)) for line in lines],
        target=target,
        around=bool(around),
        previous=previous,
        next=following,
        chart=chart,
        at=at,
        at_text=at and f"{at:%Y-%m-%d %H:%M:%S} UTC",
        at_occupants=at_occupants,
        join_link=xmpp_join_link(room),
        snippet=widget_snippet(room),
    )


def _day_page(room: str, day: date, cursor: str | None, who) -> tuple[list, str | None, str | None]:
    """A page of the day's lines, and the links to the pages before and after it."""
    start, end = parse_day(day.isoformat())
    direction, inner = "forward", None
    if cursor:
        way, _, inner = cursor.partition(":")
        if way not in ("f", "b") or not inner:
            raise bad_parameter("cursor", "is not a cursor this page issued")
        direction = "forward" if way == "f" else "backward"
    page = transcripts().page(
        room, start=start, end=end, cursor=inner, direction=direction, limit=DAY_LINES,
        include_originals=who.sees_originals,
    )  # fmt: skip
    link = lambda c: url_for("web.room", room=room, day=day.isoformat(), cursor=c)  # noqa: E731
    return (
        page.lines,
        link("b:" + page.prev_cursor) if page.prev_cursor else None,
        link("f:" + page.next_cursor) if page.next_cursor else None,
    )


def _day(text: str) -> date:
    try:
        return parse_day(text)[0].date()
    except InvalidQueryError as e:
        raise bad_parameter("day", str(e)) from None


def _latest_day(room: str) -> date:
    """The day of the room's latest line (today if it has none)."""
    lines = transcripts().page(room, direction="backward", limit=1).lines
    return lines[-1].at.date() if lines else utcnow().date()


def _line(line) -> dict:
    return {
        "id": line.id,
        "kind": line.kind,
        "at_iso": format_time(line.at),
        "at_text": f"{line.at:%H:%M:%S}",
        "nick": line.nick,
        "jid": line.jid,
        "body": line.body,
        "edited": line.edited,
        "removed": line.removed,
        "versions": [{"body": v.body, "at": f"{v.at:%H:%M:%S}"} for v in line.versions],
        "capture": line.capture,
        "text": describe(line) if line.kind != "message" else "",
    }


def _presence(room: str, day: date, at_text: str | None):
    """The day's presence chart (SVG markup) and, for ``?at=``, who was there then."""
    presence = getattr(api().views, "presence", None)
    if presence is None:
        return None, None, []
    start, end = parse_day(day.isoformat())
    spans = day_spans(presence, room, start, end)
    at = None
    here = []
    if at_text:
        try:
            at = parse_time(at_text)
        except InvalidQueryError as e:
            raise bad_parameter("at", str(e)) from None
        here = occupants_at(spans, at)
    gaps = [(gap.start, gap.end) for gap in presence.gaps(room, start=start, end=end)]
    svg = presence_svg(spans, start, end, gaps=gaps, label=f"presence in {room} on {day.isoformat()}")
    return Markup(svg), at, here  # presence_svg escapes every nick itself


def day_spans(presence, room: str, start: datetime, end: datetime) -> list[PresenceSpan]:
    """Everyone's presence spans in [start, end), from the presence view's queries."""
    nicks = {occupant.nick for occupant in presence.occupants_at(room, start).occupants}
    cursor = None
    while True:  # everyone who joined (or took a nick) that day, however long the day
        page = transcripts().page(room, start=start, end=end, cursor=cursor, limit=1000)
        nicks.update(line.nick for line in page.lines if line.kind in ("joined", "nick_changed") and line.nick)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    spans = []
    seen = set()
    for nick in sorted(nicks):
        for stay in presence.stays(room, nick=nick, start=start, end=end, limit=1000):
            for span in stay.spans:
                if span.id not in seen:
                    seen.add(span.id)
                    spans.append(PresenceSpan(span.nick, span.start, span.end, span.show))
    return spans


def xmpp_join_link(room: str) -> str:
    """XEP-0147: opens the room in the visitor's own XMPP client."""
    return "xmpp:" + quote(room, safe="@.-_~") + "?join"


def widget_snippet(room: str) -> str:
    url = url_for("widget.page", room=room, _external=True)
    return (
        f'<iframe src="{url}#ticket=TICKET" title="{room}" width="380" height="520" '
        'style="border:0" loading="lazy"></iframe>'
    )


# -- search --------------------------------------------------------------------------


@bp.get("/")
def search():
    who = require(Capability.SEARCH)
    form = {
        "q": request.args.get("q", ""),
        "rooms": request.args.getlist("room"),
        "people": request.args.get("people", ""),
        "after": request.args.get("after", ""),
        "before": request.args.get("before", ""),
        "sort": request.args.get("sort", "relevance"),
    }
    room_choices = sorted(who.visible(api().known_rooms()))
    text = query_text(form)
    results = error = None
    page = int(request.args.get("page", "1")) if request.args.get("page", "1").isdigit() else 1
    if text:
        try:
            results = run_search(who, text, form["sort"], request.args.get("cursor"))
        except InvalidQueryError as e:
            where = f" (at character {e.position + 1})" if e.position is not None else ""
            error = f"{e}{where}"
    next_url = first_url = None
    if results is not None:
        base_items = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "page")]
        if results.next_cursor:
            next_url = "?" + urlencode([*base_items, ("cursor", results.next_cursor), ("page", page + 1)])
        first_url = "?" + urlencode(base_items)

    def facet_url(name: str, value: str) -> str:
        items = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "page", name)]
        return "?" + urlencode([*items, (name, value)])

    return render_template(
        "web/search.html",
        form=form,
        room_choices=room_choices,
        results=_results(results, who) if results is not None else None,
        error=error,
        page=page,
        next_url=next_url,
        first_url=first_url,
        facet_url=facet_url,
    )


def query_text(form: dict) -> str:
    """The form's filters as the query language (what a power user would type)."""
    parts = [form["q"].strip()] if form["q"].strip() else []
    if form["rooms"]:
        rooms = [f'room:"{room}"' for room in form["rooms"]]
        parts.append(rooms[0] if len(rooms) == 1 else "(" + " OR ".join(rooms) + ")")
    people = [p.strip() for p in form["people"].split(",") if p.strip()]
    if people:
        nicks = [f'from:"{p}"' for p in people]
        parts.append(nicks[0] if len(nicks) == 1 else "(" + " OR ".join(nicks) + ")")
    if form["after"]:
        parts.append(f"after:{form['after']}")
    if form["before"]:
        parts.append(f"before:{form['before']}")
    return " ".join(parts)


def run_search(who, text: str, sort: str, cursor: str | None):
    if sort not in ("relevance", "newest", "oldest"):
        raise bad_parameter("sort", "must be relevance, newest or oldest")
    return search_index().search(text, scope_of(who), sort=sort, limit=SEARCH_PAGE, cursor=cursor)


def _results(results, who):
    hits = []
    for hit in results.hits:
        hits.append(
            {
                "room": hit.room,
                "position": hit.position,
                "nick": hit.nick,
                "jid": hit.jid if who.sees_jids else None,
                "time_iso": format_time(hit.time),
                "time_text": f"{hit.time:%Y-%m-%d %H:%M} UTC",
                "snippet_html": Markup(hit.snippet),  # escaped by the searcher; only <mark> added
                "edited": hit.edited,
                "retracted": hit.retracted,
                "earlier_versions": hit.earlier_versions if who.sees_originals else [],
            }
        )
    return {"total": results.total, "hits": hits, "facets": results.facets}
