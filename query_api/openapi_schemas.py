"""The result objects of the OpenAPI document (``components/schemas``): what each answer holds.

A test validates real answers of every JSON endpoint against these, and
schemathesis checks every answer of a running server against them.
"""

from __future__ import annotations

STRING = {"type": "string"}
OPT_STRING = {"type": ["string", "null"]}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
INSTANT = {"type": "string", "format": "date-time"}
OPT_INSTANT = {"type": ["string", "null"], "format": "date-time"}
CURSOR_OUT = {"type": ["string", "null"], "description": "pass back as `cursor` for the next page; null on the last"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict, optional: dict | None = None, *, closed: bool = False) -> dict:
    """An object with ``required`` and ``optional`` properties; ``closed``: nothing else."""
    schema = {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})}}
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


COUNTS = {"type": "object", "additionalProperties": INTEGER}

SCHEMAS = {
    "Error": obj({"error": obj({"code": STRING, "message": STRING},
                               {"position": {"type": "integer", "description": "where in the query the fault is"}})}),
    "Hit": obj(
        {"position": INTEGER, "room": STRING, "nick": STRING, "time": INSTANT, "body": OPT_STRING,
         "snippet": {"type": "string", "description": "escaped HTML, matches in <mark>"}, "thread": OPT_STRING,
         "capture": STRING, "edited": BOOLEAN, "score": {"type": ["number", "null"], "description": "relevance sort only"}},
        {"jid": {**OPT_STRING, "description": "compliance only"}, "retracted": {**BOOLEAN, "description": "compliance only"},
         "earlier_versions": {**array(STRING), "description": "compliance only"}},
    ),  # fmt: skip
    "SearchResult": obj({
        "query": STRING, "sort": {"type": "string", "enum": ["relevance", "newest", "oldest"]}, "total": INTEGER,
        "total_relation": {"type": "string", "enum": ["eq", "gte"],
                           "description": "eq: total is exact; gte: at least total (a time sort's first page without exact_total or facets)"},
        "hits": array(ref("Hit")),
        "facets": {"type": ["object", "null"], "description": "counts by room and sender, with facets=true; first page only",
                   "properties": {"rooms": COUNTS, "senders": COUNTS}},
        "next": CURSOR_OUT, "index_position": INTEGER,
    }),  # fmt: skip
    "RoomSummary": obj({"room": STRING, "messages": {"type": ["integer", "null"], "description": "null while the search index is rebuilt"}, "last_activity": OPT_INSTANT},
                       {"occupants_now": {"type": ["integer", "null"], "description": "the occupants at presence_as_of"},
                        "presence_known": BOOLEAN,
                        "presence_as_of": {**INSTANT, "description": "the archive's last known moment (known_until), "
                                                                     "where /state without at shows the room"}}),
    "RoomList": obj({"rooms": array(ref("RoomSummary")), "next": CURSOR_OUT}),
    "Line": obj(
        {"id": {"type": "integer", "description": "the log position of the event that made the line"},
         "room": STRING, "at": INSTANT,
         "kind": {**STRING, "description": "message, joined, left, ...; retraction (compliance only): of a message "
                                           "the archive does not hold"}},
        {"nick": OPT_STRING, "jid": {**OPT_STRING, "description": "compliance only"}, "body": OPT_STRING,
         "edited": BOOLEAN, "versions": array({"type": "object"}), "message_id": OPT_STRING, "stanza_id": OPT_STRING,
         "removed": {"type": ["object", "null"], "description": "who removed the message, when, why and (`capture`, "
                                                              "absent if live) how the removal was captured"},
         "capture": {**OPT_STRING, "description": "history, backfill or import; absent for an event seen live"},
         "edit_capture": {**OPT_STRING, "description": "how the correction that set the current text was captured"},
         "gap_verified": {**BOOLEAN, "description": "a gap: the room's archive was read over it, every message archived"},
         "gap_recovered": {"type": ["integer", "null"], "description": "a gap: messages of its span fetched afterwards"},
         "aliases": {**array(STRING), "description": "ids of the corrections applied, which name the message too"},
         "stanza_aliases": {**array(STRING), "description": "of aliases, the corrections' stanza-ids (the room's)"},
         "awaiting": {**OPT_STRING, "description": "a correction or retraction whose message is not archived (yet), or a removal waiting for the message the room gave the id"}},
    ),  # fmt: skip
    "TranscriptPage": obj(
        {"room": STRING, "lines": array(ref("Line")), "next": CURSOR_OUT, "previous": CURSOR_OUT},
        {"target": {"type": "integer", "description": "with around: the line asked for"}},
    ),
    "Occupant": obj({"nick": STRING, "since": OPT_INSTANT}, {"jid": OPT_STRING, "role": OPT_STRING}),
    "PresenceAt": obj({
        "room": STRING, "at": INSTANT,
        "known": {**BOOLEAN, "description": "false inside an archive gap (gap says which), before the room's archive began (a gap of kind before_archive), and after known_until (not known yet)"},
        "gap": {"type": ["object", "null"]}, "occupants": array(ref("Occupant")),
        "possibly_present": array({"type": "object"}), "next": CURSOR_OUT,
    }, {"known_until": {**OPT_INSTANT, "description": "the room's last known moment: the archive's, or earlier, when the listener stopped watching the room"},
        "unknown_why": {**OPT_STRING, "description": "why presence at `at` is not known (null: it is)"}}),  # fmt: skip
    "Bucket": obj({"start": INSTANT, "end": INSTANT, "peak": INTEGER, "distinct": INTEGER, "unknown": BOOLEAN}),
    "Stay": obj({"room": STRING, "nicks": array(STRING), "start": INSTANT, "end": OPT_INSTANT, "spans": array({"type": "object"})}),
    "PresenceRange": obj({
        "room": STRING, "from": INSTANT, "to": INSTANT, "occupancy": array(ref("Bucket")),
        "gaps": array({"type": "object"}), "stays": array(ref("Stay")), "next": CURSOR_OUT,
    }, {"known_until": {**OPT_INSTANT, "description": "buckets after it are empty and unknown"}}),  # fmt: skip
    "Presence": {"oneOf": [ref("PresenceAt"), ref("PresenceRange")]},
    "RoomState": obj({
        "room": STRING, "at": INSTANT, "subject": OPT_STRING, "occupants": array(ref("Occupant")),
        "presence_known": BOOLEAN, "lines": array(ref("Line")),
    }, {"subject_by": OPT_STRING, "gap": {"type": ["object", "null"]}, "known_until": OPT_INSTANT,
        "unknown_why": {**OPT_STRING, "description": "why presence at `at` is not known (null: it is)"}}),  # fmt: skip
    "EventLine": obj({"position": INTEGER, "event": obj({"type": STRING, "room": STRING, "occurred_at": INSTANT})}),
    "TicketRequest": obj(
        {"room": {"type": "string", "description": "the room's JID"}},
        {"jid": {"type": "string", "maxLength": 1024}, "password": {"type": "string", "maxLength": 1024},
         "nick": {"type": "string", "maxLength": 1024}}, closed=True,
    ),  # fmt: skip
    "Ticket": obj({
        "ticket": {"type": "string", "description": "signed; send it back in the X-Widget-Ticket header"},
        "url": {"type": "string", "description": "the widget page, the ticket (and any credentials) in its fragment"},
        "expires_at": INSTANT, "credentials": BOOLEAN,
    }),  # fmt: skip
    # A whole transcript line (it replaces the one with its id), or {"id", "kind": "gone"}.
    # ``author``: a keyed hash of the room, the line's bare real JID and its author's stay (widget_feed.author_key),
    # the JID withheld.
    "WidgetItem": obj({"id": INTEGER, "kind": STRING}, {"at": INSTANT, "nick": OPT_STRING, "occupant_id": OPT_STRING,
                                                         "author": OPT_STRING,
                                                         "body": OPT_STRING, "old_nick": OPT_STRING, "removed": BOOLEAN,
                                                         "edited": BOOLEAN, "refs": array(STRING),
                                                         "stanza_id": OPT_STRING, "stanza_aliases": array(STRING)}),
    "WidgetActivity": obj({"items": array(ref("WidgetItem")), "cursor": {"type": "string", "description": "signed; poll on with it"}}),
}
