"""`GET /search`: the index, searched within the rooms the caller may see.

The caller's rooms become the search's ``Scope``, a clause of the index query
itself, so totals, pages and facets only ever count what the caller may see.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from projections.search import Scope
from projections.search.query import MAX_QUERY_CHARS

from . import audit
from .access import Caller
from .context import api, caller, json_response
from .errors import bad_parameter
from .params import MAX_CURSOR_CHARS, Params, decode_cursor, encode_cursor
from .roles import Capability

bp = Blueprint("search", __name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 500


def index():
    return api().search


def scope_of(who: Caller, rooms: list[str] | None = None) -> Scope:
    """The caller's search scope, optionally narrowed to ``rooms`` (already checked visible).
    Only a caller who sees real JIDs may also search by them (``jid:``)."""
    if rooms is None and not who.scope.everything:
        rooms = api().visible_rooms(who)
    return Scope(
        rooms=None if rooms is None else frozenset(rooms), compliance=who.sees_originals, jids=who.sees_jids
    )


@bp.get("/search")
def search() -> Response:
    who = caller(Capability.SEARCH)
    params = Params(request.args, ("q", "sort", "limit", "cursor", "facets", "exact_total"))
    if "q" not in request.args:
        raise bad_parameter("q", "is required (an empty q finds everything in scope)")
    text = params.text("q", max_length=MAX_QUERY_CHARS) or ""
    sort = params.choice("sort", ("relevance", "newest", "oldest"), "relevance")
    limit = params.integer("limit", DEFAULT_LIMIT, minimum=1, maximum=min(MAX_LIMIT, api().settings.max_page_size))
    facets = params.boolean("facets")
    exact_total = params.boolean("exact_total")
    cursor = params.text("cursor", max_length=MAX_CURSOR_CHARS)
    results = run_search(who, text, sort, limit, cursor, facets=facets, exact_total=exact_total)
    audit.results(len(results.hits))
    return json_response({
        "query": results.query,
        "sort": results.sort,
        "total": results.total,
        "total_relation": results.total_relation,
        "hits": [hit_json(hit, who) for hit in results.hits],
        "facets": facets_json(results.facets),
        "next": results.next_cursor,
        "index_position": results.index_position,
    })  # fmt: skip


def run_search(who: Caller, text: str, sort: str, limit: int, cursor: str | None, *, facets: bool,
               exact_total: bool = False):
    """One page of a search in the caller's scope, for the API and the search page alike: the
    cursor given back is one this server signed, and so is ``next_cursor`` of the results.
    Facets (counted over every hit: most of a search's cost) only when asked, on a first page;
    a time-sorted first page's total may be a lower bound (``total_relation`` "gte") unless
    ``exact_total`` or facets."""
    inner = None if cursor is None else decode_cursor(cursor, "search")
    if inner is not None and not isinstance(inner, str):
        raise bad_parameter("cursor", "is not a search cursor this server issued")
    scope, search_index = scope_of(who), index()
    with_facets = facets and inner is None
    results = api().searches.run(
        lambda: search_index.search(
            text, scope, sort=sort, limit=limit, cursor=inner, facets=with_facets, exact_total=exact_total
        ),
        api().settings.search_timeout,
    )
    if results.next_cursor is not None:
        results.next_cursor = encode_cursor(results.next_cursor, "search")
    return results


def facets_json(facets) -> dict | None:
    """Counts by room and by sender, most first; None unless asked for (``facets=true``), and on
    later pages (they are the first page's)."""
    if facets is None:
        return None
    return {
        "rooms": {f.value: f.count for f in facets.rooms},
        "senders": {f.value: f.count for f in facets.senders},
    }


def hit_json(hit, who: Caller) -> dict:
    fields = {
        "position": hit.position, "room": hit.room, "nick": hit.nick, "time": hit.time, "body": hit.body,
        "snippet": hit.snippet, "thread": hit.thread, "capture": hit.capture, "edited": hit.edited,
        "score": hit.score,
    }  # fmt: skip
    if who.sees_jids:
        fields["jid"] = hit.jid
    if who.sees_originals:
        fields["retracted"] = hit.retracted
        fields["earlier_versions"] = hit.earlier_versions
    return fields
