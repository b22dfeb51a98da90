"""The OpenAPI 3.1 document describing every endpoint, served at ``/api/v1/openapi.json``.

Written by hand next to the code it describes; a test checks that every route
of the app is described here and every path described here is routed, and
schemathesis checks a running server against it (tests/query_api/test_schemathesis.py).
It states the real constraints: required and maximum lengths, formats, limits,
and in each operation's description which parameters go together. The result
objects are in ``openapi_schemas``.
"""

from __future__ import annotations

from flask import Blueprint, Response

from projections.search.query import MAX_QUERY_CHARS
from projections.search.searcher import MAX_RELEVANCE_DEPTH


from .context import json_response
from .openapi_schemas import SCHEMAS, ref
from .params import MAX_CURSOR_CHARS
from .search import MAX_LIMIT as MAX_SEARCH_LIMIT

bp = Blueprint("openapi", __name__)

TIME = {"type": "string", "description": "ISO 8601 (2024-05-01, 2024-05-01T12:30:00Z) or relative (-7d, -2h)"}
CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": MAX_CURSOR_CHARS},
          "description": "the `next` (or `previous`) cursor of an earlier page of the same list: signed by the server, "
                         "anything else is a 400"}  # fmt: skip
LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
ROOM = {"name": "room", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}, "description": "room JID"}
SITE_USER = {
    "name": "X-Chat-Archive-User", "in": "header", "schema": {"type": "string", "maxLength": 1024},
    "description": "the site user a `site` token acts for (required with a site token; header name set by `[api] user_header`)",
}  # fmt: skip


def query(name: str, schema: dict, description: str = "", required: bool = False) -> dict:
    param = {"name": name, "in": "query", "schema": schema, "required": required}
    if description:
        param["description"] = description
    return param


def time_param(name: str, description: str) -> dict:
    return query(name, {"type": "string", "maxLength": 64}, f"{description}: {TIME['description']}")


def errors(*statuses: int) -> dict:
    meaning = {
        400: "bad input: unknown parameter, bad value, bad date, query syntax error (with position)",
        401: "no token or an unknown or revoked token",
        403: "the caller's role may not use this endpoint",
        404: "no such room, or one the caller may not see (the same answer)",
        409: "not ready yet (an export still running, or failed)",
        410: "the export expired: its bundle was deleted `[api] export_keep_days` after it finished (`expired`); or, "
             "not expired, its bundle is missing from `[api] export_dir` (`bundle_missing`)",
        413: "the request body is larger than 64 KiB (refused before it is read)",
        415: "a body of a kind this endpoint does not take: JSON where it reads query or form parameters, anything "
             "but JSON for a widget ticket",
        429: "too many at once: this client already has `[api] streams_per_client` streams open, or closed so lately "
             "that the server has not seen their end (a stream; `Retry-After`: when it will have), or "
             "`[api] max_running_exports` export jobs are running (an export job)",
        503: "the archive, its views or its index cannot be read right now, a search ran past `[api] search_timeout`, "
             "or too many streams are open",
    }
    return {str(s): {"description": meaning[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}} for s in statuses}


def json_ok(description: str, schema: dict) -> dict:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def ndjson_ok(description: str) -> dict:
    return {"200": {"description": description, "content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/EventLine"}}}}}


def operation(
    summary: str, roles: str, parameters: list, responses: dict, statuses=(400, 401, 403, 404), together: str = ""
) -> dict:
    """``together``: which parameters go together (OpenAPI cannot say it formally)."""
    return {
        "summary": summary,
        "description": f"Roles: {roles}." + (f" {together}" if together else ""),
        "parameters": parameters,
        "responses": {**responses, **errors(*statuses)},
    }


OBJECT = {"type": "object"}
STREAMS = (400, 401, 403, 404, 429, 503)


def document() -> dict:
    paths = {
        "/api/v1/search": {"get": operation(
            "Search messages in the rooms the caller may see", "compliance, site, anonymous (public rooms)",
            [{**query("q", {"type": "string", "maxLength": MAX_QUERY_CHARS},
                      "query in the archive's query language (README: at most 256 terms, 16 of them prefix* or fuzzy~, "
                      "32 levels of nesting); empty: everything in scope", required=True), "allowEmptyValue": True},
             query("sort", {"type": "string", "enum": ["relevance", "newest", "oldest"]}),
             query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT}), CURSOR,
             query("facets", {"type": "boolean", "default": False},
                   "also count the hits by room and by sender (first page only; most of a search's cost)"),
             query("exact_total", {"type": "boolean", "default": False},
                   "count every match (about half of a common word's newest page); without it (or `facets=true`) a "
                   "newest/oldest first page may give a lower bound, `total_relation` \"gte\""),
             SITE_USER],
            json_ok("hits (room, nick, jid where visible, time, body, snippet, position), total and total_relation (\"eq\" exact, "
                    "\"gte\" at least), facets by room and sender if asked",
                    ref("SearchResult")), statuses=(400, 401, 403, 503),
            together=f"`cursor` goes with the `q` and `sort` of the page that gave it. Relevance paging stops at "
                     f"{MAX_RELEVANCE_DEPTH} hits (time sorts page to the end).")},
        "/api/v1/rooms": {"get": operation(
            "Rooms the caller may see", "compliance, analyst, site, anonymous (public rooms)", [LIMIT, CURSOR, SITE_USER],
            json_ok("rooms with message count (as the caller would find them), occupants now, last activity", ref("RoomList")),
            statuses=(400, 401, 503))},
        "/api/v1/rooms/{room}/transcript": {"get": operation(
            "A room's transcript", "compliance, site, anonymous (public rooms)",
            [ROOM, time_param("from", "start"), time_param("to", "end (exclusive)"),
             query("day", {"type": "string", "format": "date", "maxLength": 10}, "a UTC day, YYYY-MM-DD"),
             query("around", {"type": "string", "maxLength": 256}, "a line's position (a search hit's `position`) or a message id (digits that are no line's position in the room: the message of that id): the lines around it"),
             query("format", {"type": "string", "enum": ["json", "html", "text"]}),
             query("tz", {"type": "string", "maxLength": 64}, "time zone (IANA name) of the times in the text and html formats; default `[api] time_zone`"),
             LIMIT, CURSOR, SITE_USER],
            {"200": {"description": "transcript lines (JSON page), a complete HTML page or plain text lines; a range's "
                            "first page (and an `around` window) begins with the archive gaps that began before it "
                            "and reach into it", "content": {
                "application/json": {"schema": ref("TranscriptPage")}, "text/html": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}}}}}, statuses=(400, 401, 403, 404, 503),
            together="`day` or `from`/`to`, not both; `around` alone (with `limit`, `format`); `cursor` carries the "
                     "range of the page that gave it.")},
        "/api/v1/rooms/{room}/presence": {"get": operation(
            "Who was in a room at a time, or presence intervals and occupancy over a range",
            "compliance, analyst, site, anonymous (public rooms)",
            [ROOM, time_param("at", "occupants at this time"), time_param("from", "start of a range"),
             time_param("to", "end of a range"),
             query("buckets", {"type": "integer", "minimum": 1, "maximum": 1000}, "occupancy counts: number of equal parts of the range (default 24)"),
             query("nick", {"type": "string", "maxLength": 1024}, "with from/to: the intervals this nick was in the room"),
             query("jid", {"type": "string", "maxLength": 3071}, "with from/to: the intervals this real JID was in the room (compliance only)"),
             query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                   "at=T: occupants per page; with nick/jid: most stays; else: people per page (default 100)"),
             CURSOR, SITE_USER],
            json_ok("at=T: occupants then (known=false inside an archive gap); from/to: occupancy buckets, gaps, and stays (intervals) "
                    "of the named person or of everyone there (paged by nick, `next`; a page reads at most 1000 stays "
                    "and may end inside one person's stays)",
                    ref("Presence")), statuses=(400, 401, 403, 404, 503),
            together="Either `at` (with `limit`, `cursor`) or `from` and `to` (with `buckets`, and `nick` or `jid`, or "
                     "`limit` and `cursor` for everyone); `cursor` not with `nick` or `jid`.")},
        "/api/v1/rooms/{room}/state": {"get": operation(
            "A room's state at a time", "compliance, analyst",
            [ROOM, time_param("at", "the time (default: the archive's last known moment)"), time_param("since", "only transcript lines from this time on"),
             query("limit", {"type": "integer", "minimum": 0, "maximum": 5000}, "most transcript lines (the last before T; default 200)")],
            json_ok("occupants, subject and the room's details as they were at T", ref("RoomState")),
            statuses=(400, 401, 403, 404, 503))},
        "/api/v1/rooms/{room}/events": {"get": operation(
            "Replay a room's events as NDJSON, streamed", "compliance, analyst",
            [ROOM, query("after", {"type": "integer", "minimum": 0}, "only events after this global position (the cursor)"),
             time_param("from", "events that occurred at or after"), time_param("to", "events that occurred before"),
             query("limit", {"type": "integer", "minimum": 1})],
            ndjson_ok("one `{\"position\": N, \"event\": {...}}` per line"), statuses=STREAMS)},
        "/api/v1/events": {"get": operation(
            "Replay the global log as NDJSON, streamed; follow=true tails it live", "compliance, analyst (granted rooms only)",
            [query("after", {"type": "integer", "minimum": 0}, "only events after this global position (the cursor)"),
             query("follow", {"type": "boolean"}, "keep the stream open and send events as they are appended; idle streams get empty keep-alive lines"),
             query("limit", {"type": "integer", "minimum": 1})],
            ndjson_ok("one `{\"position\": N, \"event\": {...}}` per line"), statuses=(400, 401, 403, 429, 503),
            together="`limit` counts events, not keep-alive lines; a `follow` stream ends when the token is revoked.")},
        "/api/v1/export": {"get": operation(
            "Compliance export of a search or a room's time range, streamed, ending with a SHA-256 line", "compliance",
            [query("q", {"type": "string", "maxLength": MAX_QUERY_CHARS}, "a search whose messages are exported, with their edits and retractions"),
             query("room", {"type": "string", "maxLength": 3071}, "a room to export (all its events), or to restrict q to"),
             time_param("from", "start"), time_param("to", "end (exclusive)"),
             query("format", {"type": "string", "enum": ["jsonl", "csv"]})],
            {"200": {"description": "JSON lines ending with {\"sha256\": ..., \"count\": N, \"manifest\": {...}}, or CSV ending with `# sha256=... count=N manifest={...}`",
                     "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}},
            statuses=STREAMS, together="`q` or `room` is required; `from`/`to` narrow either.")},
        "/api/v1/exports": {"post": operation(
            "Start an eDiscovery export job (a ZIP of RSMF 2.0, EML per room-day, JSON lines or CSV, with a manifest)",
            "compliance",
            [query("format", {"type": "string", "enum": ["rsmf", "eml", "jsonl", "csv"]}),
             query("room", {"type": "string"}, "room JIDs, comma-separated (default every room)"),
             time_param("from", "start"), time_param("to", "end (exclusive)"),
             query("q", {"type": "string"}, "only the messages this search finds, with their edits and removals")],
            {"202": {"description": "the job's status: `id`, `state`, progress (`rooms_done` of `rooms_total`, `events`)",
                     "content": {"application/json": {"schema": OBJECT}}}},
            statuses=(400, 401, 403, 404, 415, 429))},
        "/api/v1/exports/{job_id}": {"get": operation(
            "An export job's status and progress", "compliance (the token that started it)",
            [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            json_ok("state running, done (with `manifest_sha256` and `bytes`) or failed (with `error`); "
                    "`expires_at`: when a finished job's bundle will be deleted (null while it runs, or if kept forever)", OBJECT),
            statuses=(401, 403, 404, 410))},
        "/api/v1/exports/{job_id}/download": {"get": operation(
            "Download a finished export (streamed; HTTP Range requests resume an interrupted download)",
            "compliance (the token that started it)",
            [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            {"200": {"description": "the ZIP; header X-Manifest-SHA256", "content": {"application/zip": {"schema": {"type": "string"}}}},
             "206": {"description": "the range asked for", "content": {"application/zip": {"schema": {"type": "string"}}}}},
            statuses=(401, 403, 404, 409, 410))},
        "/api/v1/holds": {
            "get": operation("The legal holds in force", "compliance", [], json_ok("`{\"holds\": [...]}`", OBJECT),
                             statuses=(400, 401, 403)),
            "post": operation(
                "Place a legal hold: events it covers survive every purge recorded after it", "compliance",
                [query("case", {"type": "string"}, "the case (matter)", required=True),
                 query("room", {"type": "string"}, "room JIDs or globs, comma-separated (default every room)"),
                 query("jid", {"type": "string"}, "people's JIDs, comma-separated (default everyone)"),
                 time_param("from", "start"), time_param("to", "end (exclusive)")],
                {"201": {"description": "the hold placed", "content": {"application/json": {"schema": OBJECT}}}},
                statuses=(400, 401, 403, 415))},
        "/api/v1/holds/{hold_id}/release": {"post": operation(
            "Release a legal hold", "compliance",
            [{"name": "hold_id", "in": "path", "required": True, "schema": {"type": "string"}},
             query("reason", {"type": "string"})],
            json_ok("the release", OBJECT), statuses=(400, 401, 403, 404, 415))},
        "/api/v1/audit": {"get": operation(
            "The audit trail: who read what (every search, transcript, presence, state, replay, export and audit read)",
            "compliance",
            [query("who", {"type": "string"}, "only records of this token id, site user or role"),
             time_param("since", "records at or after"), time_param("until", "records before"),
             query("after", {"type": "integer", "minimum": 0}, "the `next_after` of an earlier page"),
             query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
             query("trail", {"type": "string"}, "`chat-archive:audit` (the default): the reads made on this store; "
                   "`chat-archive:audit:copied`: the trail of the store it was migrated or restored from")],
            json_ok("records oldest first: `{\"records\": [{\"position\": N, \"record\": {...}}], \"next_after\": N|null}`; "
                    "a page looks at 10,000 records at most, so with a filter it may hold fewer than `limit`, even none, "
                    "while `next_after` is not null: page on until it is",
                    {"type": "object", "properties": {"records": {"type": "array", "items": OBJECT},
                                                     "next_after": {"type": ["integer", "null"]}},
                     "required": ["records", "next_after"]}),
            statuses=(400, 401, 403, 503))},
        "/api/v1/openapi.json": {"get": {
            "summary": "This document", "security": [],
            "responses": json_ok("the OpenAPI document", OBJECT)}},
        "/healthz": {"get": {
            "summary": "Whether the archive can be read and the process's parts work (open to all, says nothing of content)",
            "description": "`status`: `ok`, `degraded` (a part retries store errors: `parts.NAME.ok` false, "
                           "`failing_since`, `attempts`) or `unavailable` (the store cannot be read). `rebuilding` "
                           "(only while there are any): view -> why it is being rebuilt from the log (built by older "
                           "rules), the old one answering until then.",
            "security": [],
            "responses": {**json_ok("ok", OBJECT), "503": {"description": "the store cannot be read, or a part is retrying store errors",
                                                          "content": {"application/json": {"schema": OBJECT}}}}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics: events appended, projection lag, index lag, request latency",
            "description": "A token that sees every room (compliance), or none when `[api] metrics_public` is on.",
            "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **errors(401, 403)}}},
        **widget_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "chat-archive query API", "version": "1.0.0",
                 "description": "Search, transcripts, presence, state, replay and export of an XMPP group chat archive. "
                                "Times are ISO 8601 in UTC; lists are paged with an opaque cursor."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token from `chat-archive token create --role ROLE`"}},
            "schemas": SCHEMAS,
        },
    }


def widget_paths() -> dict:
    ticket_header = {"name": "X-Widget-Ticket", "in": "header", "schema": {"type": "string", "maxLength": 8192},
                     "description": "a ticket from POST /widget/tickets (else a signed-in page user, or anonymous read)"}  # fmt: skip
    return {
        "/widget/tickets": {"post": {
            **operation("A widget ticket for one of the site's users and one room (for the embedding site's server)",
                        "compliance, site (anonymous callers: 401)", [SITE_USER], json_ok("the ticket", ref("Ticket")),
                        statuses=(400, 401, 403, 404, 413, 415)),
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref("TicketRequest")}}},
        }},
        "/widget/{room}": {"get": {
            "summary": "The embeddable widget page (its script reads the ticket from the URL fragment)", "security": [],
            "parameters": [ROOM],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/widget/{room}/activity": {"get": operation(
            "The widget's live feed: recent lines, then what happened since the cursor", "a ticket's caller",
            [ROOM, {**CURSOR, "description": "the `cursor` of the previous poll (signed)"}, ticket_header],
            json_ok("items and the cursor to poll on with", ref("WidgetActivity")), statuses=(400, 401, 404, 503),
            together="A ticket stands for one room only; a ticket whose token was revoked is a 401.")},
    }


_DOCUMENT = document()


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return json_response(_DOCUMENT)
