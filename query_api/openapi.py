"""The OpenAPI 3.1 document describing every endpoint, served at ``/api/v1/openapi.json``.

Written by hand next to the code it describes; a test checks that every route
of the app is described here and every path described here is routed.
"""

from __future__ import annotations

from flask import Blueprint, Response

from .context import json_response

bp = Blueprint("openapi", __name__)

TIME = {"type": "string", "description": "ISO 8601 (2024-05-01, 2024-05-01T12:30:00Z) or relative (-7d, -2h)"}
CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "the `next` (or `previous`) cursor of an earlier page"}
LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
ROOM = {"name": "room", "in": "path", "required": True, "schema": {"type": "string"}, "description": "room JID"}
SITE_USER = {
    "name": "X-Chat-Archive-User", "in": "header", "schema": {"type": "string"},
    "description": "the site user a `site` token acts for (required with a site token; header name set by `[api] user_header`)",
}  # fmt: skip


def query(name: str, schema: dict, description: str = "", required: bool = False) -> dict:
    param = {"name": name, "in": "query", "schema": schema, "required": required}
    if description:
        param["description"] = description
    return param


def time_param(name: str, description: str) -> dict:
    return query(name, {"type": "string"}, f"{description}: {TIME['description']}")


def errors(*statuses: int) -> dict:
    meaning = {
        400: "bad input: unknown parameter, bad value, bad date, query syntax error (with position)",
        401: "no token or an unknown or revoked token",
        403: "the caller's role may not use this endpoint",
        404: "no such room, or one the caller may not see (the same answer)",
        503: "the archive, its views or its index cannot be read right now, or too many follow streams are open",
    }
    return {str(s): {"description": meaning[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}} for s in statuses}


def json_ok(description: str, schema: dict) -> dict:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def ndjson_ok(description: str) -> dict:
    return {"200": {"description": description, "content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/EventLine"}}}}}


def operation(summary: str, roles: str, parameters: list, responses: dict, statuses=(400, 401, 403, 404)) -> dict:
    return {
        "summary": summary,
        "description": f"Roles: {roles}.",
        "parameters": parameters,
        "responses": {**responses, **errors(*statuses)},
    }


OBJECT = {"type": "object"}


def page_of(name: str, **more: dict) -> dict:
    """A page of a list: the items under ``name``, and the cursor of the next page (null on the last)."""
    return {
        "type": "object",
        "properties": {name: {"type": "array", "items": OBJECT}, "next": {"type": ["string", "null"]}, **more},
        "required": [name, "next"],
    }


def document() -> dict:
    paths = {
        "/api/v1/search": {"get": operation(
            "Search messages in the rooms the caller may see", "compliance, site, anonymous (public rooms)",
            [query("q", {"type": "string"}, "query in the archive's query language", required=True),
             query("sort", {"type": "string", "enum": ["relevance", "newest", "oldest"]}), LIMIT, CURSOR, SITE_USER],
            json_ok("hits (room, nick, jid where visible, time, body, snippet, position), total, facets by room and sender",
                    {"$ref": "#/components/schemas/SearchResult"}), statuses=(400, 401, 403, 503))},
        "/api/v1/rooms": {"get": operation(
            "Rooms the caller may see", "compliance, analyst, site, anonymous (public rooms)", [LIMIT, CURSOR, SITE_USER],
            json_ok("rooms with message count (as the caller would find them), occupants now, last activity", page_of("rooms")),
            statuses=(400, 401, 503))},
        "/api/v1/rooms/{room}/transcript": {"get": operation(
            "A room's transcript", "compliance, site, anonymous (public rooms)",
            [ROOM, time_param("from", "start"), time_param("to", "end (exclusive)"),
             query("day", {"type": "string", "format": "date"}, "a UTC day, YYYY-MM-DD"),
             query("around", {"type": "string"}, "a line's position (a search hit's `position`) or a message id: the lines around it"),
             query("format", {"type": "string", "enum": ["json", "html", "text"]}), LIMIT, CURSOR, SITE_USER],
            {"200": {"description": "transcript lines (JSON page), a complete HTML page or plain text lines", "content": {
                "application/json": {"schema": page_of(
                    "lines", room={"type": "string"}, previous={"type": ["string", "null"]},
                    target={"type": "integer", "description": "with around: the line asked for"})}, "text/html": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}}}}}, statuses=(400, 401, 403, 404, 503))},
        "/api/v1/rooms/{room}/presence": {"get": operation(
            "Who was in a room at a time, or presence intervals and occupancy over a range",
            "compliance, analyst, site, anonymous (public rooms)",
            [ROOM, time_param("at", "occupants at this time"), time_param("from", "start of a range"),
             time_param("to", "end of a range"),
             query("buckets", {"type": "integer", "minimum": 1, "maximum": 1000}, "occupancy counts: number of equal parts of the range (default 24)"),
             query("nick", {"type": "string"}, "with from/to: the intervals this nick was in the room"),
             query("jid", {"type": "string"}, "with from/to: the intervals this real JID was in the room (compliance only)"),
             query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                   "at=T: occupants per page; with nick/jid: most stays; else: people per page (default 100)"),
             CURSOR, SITE_USER],
            json_ok("at=T: occupants then (known=false inside an archive gap); from/to: occupancy buckets, gaps, and stays (intervals) "
                    "of the named person or of everyone there (paged by nick, `next`)",
                    OBJECT), statuses=(400, 401, 403, 404, 503))},
        "/api/v1/rooms/{room}/state": {"get": operation(
            "A room's state at a time", "compliance, analyst",
            [ROOM, time_param("at", "the time (default now)"), time_param("since", "only transcript lines from this time on"),
             query("limit", {"type": "integer", "minimum": 0, "maximum": 5000}, "most transcript lines (the last before T; default 200)")],
            json_ok("occupants, subject and the room's details as they were at T", OBJECT), statuses=(400, 401, 403, 404, 503))},
        "/api/v1/rooms/{room}/events": {"get": operation(
            "Replay a room's events as NDJSON, streamed", "compliance, analyst",
            [ROOM, query("after", {"type": "integer", "minimum": 0}, "only events after this global position (the cursor)"),
             time_param("from", "events that occurred at or after"), time_param("to", "events that occurred before"),
             query("limit", {"type": "integer", "minimum": 1})],
            ndjson_ok("one `{\"position\": N, \"event\": {...}}` per line"))},
        "/api/v1/events": {"get": operation(
            "Replay the global log as NDJSON, streamed; follow=true tails it live", "compliance, analyst (granted rooms only)",
            [query("after", {"type": "integer", "minimum": 0}, "only events after this global position (the cursor)"),
             query("follow", {"type": "boolean"}, "keep the stream open and send events as they are appended; idle streams get empty keep-alive lines"),
             query("limit", {"type": "integer", "minimum": 1})],
            ndjson_ok("one `{\"position\": N, \"event\": {...}}` per line"), statuses=(400, 401, 403, 503))},
        "/api/v1/export": {"get": operation(
            "Compliance export of a search or a room's time range, streamed, ending with a SHA-256 line", "compliance",
            [query("q", {"type": "string"}, "a search whose messages are exported, with their edits and retractions"),
             query("room", {"type": "string"}, "a room to export (all its events), or to restrict q to"),
             time_param("from", "start"), time_param("to", "end (exclusive)"),
             query("format", {"type": "string", "enum": ["jsonl", "csv"]})],
            {"200": {"description": "JSON lines ending with {\"sha256\": ..., \"count\": N}, or CSV ending with `# sha256=... count=N`",
                     "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}},
            statuses=(400, 401, 403, 404, 503))},
        "/api/v1/audit": {"get": operation(
            "The audit trail: who read what (every search, transcript, presence, state, replay, export and audit read)",
            "compliance",
            [query("who", {"type": "string"}, "only records of this token id, site user or role"),
             time_param("since", "records at or after"), time_param("until", "records before"),
             query("after", {"type": "integer", "minimum": 0}, "the `next_after` of an earlier page"),
             query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
            json_ok("records oldest first: `{\"records\": [{\"position\": N, \"record\": {...}}], \"next_after\": N|null}`",
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
                           "`failing_since`, `attempts`) or `unavailable` (the store cannot be read).",
            "security": [],
            "responses": {**json_ok("ok", OBJECT), "503": {"description": "the store cannot be read, or a part is retrying store errors",
                                                          "content": {"application/json": {"schema": OBJECT}}}}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics: events appended, projection lag, index lag, request latency",
            "description": "Any valid token, or none when `[api] metrics_public` is on.",
            "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **errors(401)}}},
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
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"},
                        "position": {"type": "integer", "description": "where in the query the fault is"}}}}},
                "EventLine": {"type": "object", "required": ["position", "event"], "properties": {
                    "position": {"type": "integer"}, "event": {"type": "object", "required": ["type", "room", "occurred_at"]}}},
                "SearchResult": {"type": "object", "required": ["hits", "total", "facets", "next"], "properties": {
                    "hits": {"type": "array", "items": OBJECT}, "total": {"type": "integer"},
                    "facets": {"type": ["object", "null"], "description": "by room and by sender; on the first page only"},
                    "next": {"type": ["string", "null"]}}},
            },
        },
    }


_DOCUMENT = document()


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return json_response(_DOCUMENT)
