"""The search page: the query language with its help at hand, filters, snippets, facets, paging.

The form's filters become query-language terms (``room:``, ``from:``, ``after:``,
``before:``), and the search runs in the caller's scope exactly as the API's
``/search`` does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import redirect, render_template, request, url_for
from markupsafe import Markup

from archive.errors import InvalidQueryError, NotFoundError
from archive.room_names import RoomNames
from archive.times import format_time
from projections.search.query import quoted

from .. import audit
from ..context import api
from ..errors import bad_parameter, room_not_found
from ..roles import Capability
from ..search import run_search as run_api_search
from .pages import bp, require
from .text import marked_words

SEARCH_PAGE = 20


@bp.get("/")
def search():
    # Sign-in lands here: a role that may not search (analyst) is sent to the rooms, not to a 403 whose way out,
    # "Back to search", is this page; a search it asks for is refused as in the API.
    if not request.args and not require(Capability.ROOMS).can(Capability.SEARCH):
        return redirect(url_for("web.rooms"), 303)
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
    for name in form["rooms"]:
        given_room(name, room_choices)
    text = query_text(form)
    results = error = None
    page_text = request.args.get("page", "1")
    # isdecimal, not isdigit: int() refuses the superscripts isdigit takes (page=²: a 500).
    page = int(page_text) if page_text.isdecimal() and len(page_text) <= 6 else 1
    if text:
        try:
            results = run_search(who, text, form["sort"], request.args.get("cursor"))
            audit.results(len(results.hits))
            audit.query(text)
        except InvalidQueryError as e:
            # The message names the position (counted from 0, as in the API); the caret shows it.
            error = {"message": str(e), "query": text, "caret": e.position}
    next_url = first_url = None
    if results is not None:
        base_items = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "page")]
        if results.next_cursor:
            next_url = "?" + urlencode([*base_items, ("cursor", results.next_cursor), ("page", page + 1)])
        first_url = "?" + urlencode(base_items)

    def facet_url(name: str, value: str) -> str:
        items = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "page", name)]
        return "?" + urlencode([*items, (name, value)])

    # A malformed query is the caller's error: 400, as the API answers it, with the page that shows where.
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
        query=text,
    ), 400 if error else 200


def query_text(form: dict) -> str:
    """The form's filters as the query language (what a power user would type)."""
    parts = [form["q"].strip()] if form["q"].strip() else []
    # Values quoted whatever they hold: a nick with a " (or a room or date from an edited address) was a query
    # error about text the person never typed, or a term of its own after a space.
    if form["rooms"]:
        rooms = [f"room:{quoted(room)}" for room in form["rooms"]]
        parts.append(rooms[0] if len(rooms) == 1 else "(" + " OR ".join(rooms) + ")")
    people = [p.strip() for p in form["people"].split(",") if p.strip()]
    if people:
        nicks = [f"from:{quoted(p)}" for p in people]
        parts.append(nicks[0] if len(nicks) == 1 else "(" + " OR ".join(nicks) + ")")
    if form["after"]:
        parts.append(f"after:{quoted(form['after'])}")
    if form["before"]:
        parts.append(f"before:{quoted(form['before'])}")
    return " ".join(parts)


def given_room(name: str, visible: list[str]) -> None:
    """A room the form's filter names, read as search's ``room:`` reads it (a JID in any case, or a bare name for
    every room of that name), among the rooms the caller may see; none is the API's 404 (a room that does not exist
    and one the caller may not see alike), not a page saying that no message matches."""
    try:
        RoomNames(visible).given(name)
    except NotFoundError:
        raise room_not_found(name) from None


def run_search(who, text: str, sort: str, cursor: str | None):
    if sort not in ("relevance", "newest", "oldest"):
        raise bad_parameter("sort", "must be relevance, newest or oldest")
    # The page shows facets, which count every match: its total (a person reads it) is exact too.
    return run_api_search(who, text, sort, SEARCH_PAGE, cursor, facets=True)


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
                "time_utc": f"{hit.time:%Y-%m-%d %H:%M:%S} UTC",
                "context_url": url_for(
                    "web.room", room=hit.room, around=hit.position, t=format_time(hit.time), hl=marked_words(hit.snippet)
                )
                + f"#l{hit.position}",
                "snippet_html": Markup(hit.snippet),  # escaped by the searcher; only <mark> added
                "edited": hit.edited,
                "retracted": hit.retracted,
                "earlier_versions": hit.earlier_versions if who.sees_originals else [],
            }
        )
    return {"total": results.total, "hits": hits, "facets": results.facets}
