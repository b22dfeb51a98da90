"""The embeddable room widget: ``/widget/{room}``, its live feed, tickets and the Join session.

Who may view: the embedding site's server asks for a ticket (``POST
/widget/tickets`` with its API token, naming its user as for any API call) and
puts it in the iframe's URL *fragment* (``/widget/ROOM#ticket=...``), which
browsers never send to servers, so it reaches no access log. A ticket stands for
that caller and that room only; room permission is checked again on every
poll. Without a ticket the widget serves a signed-in page user (same site) or,
when anonymous read is on, public rooms.

Join is the browser's own business: the widget's script (``static/xmpp.js``)
signs the user's XMPP account in over the XMPP server's WebSocket endpoint
(RFC 7395, ``[api] widget_websocket_url``) and joins the room there. This
server holds no XMPP session and never keeps a password: credentials the
embedding site passes with a ticket request are handed back in the URL
fragment, which only the widget's script reads (and then removes).

Live updates are polled (about every 1.5 s) rather than streamed: a poll may
carry the ticket in a header (EventSource cannot), and it does not hold one of
the server's worker threads per open widget.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlencode

from flask import Blueprint, current_app, render_template, request, url_for

from archive.times import format_time, utcnow

from ..access import Caller
from ..context import api, caller, json_response, visible_room
from ..errors import bad_parameter, room_not_found, unauthorized
from ..params import decode_cursor, encode_cursor
from ..roles import Capability, Role
from ..transcript import transcripts
from . import widget_feed
from .auth import WEB, page_caller

bp = Blueprint("widget", __name__)

TICKET_SECONDS = 8 * 3600
MAX_TICKETS = 100_000
TICKET_HEADER = "X-Widget-Ticket"


@dataclass
class Ticket:
    caller: Caller
    room: str
    expires: float


class Tickets:
    def __init__(self):
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    def issue(self, ticket: Ticket) -> str:
        key = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            for old in [k for k, t in self._tickets.items() if t.expires < now]:
                del self._tickets[old]
            while len(self._tickets) >= MAX_TICKETS:  # memory stays bounded whatever a site asks for
                del self._tickets[next(iter(self._tickets))]
            self._tickets[key] = ticket
        return key

    def get(self, key: str) -> Ticket | None:
        with self._lock:
            ticket = self._tickets.get(key)
        return ticket if ticket is not None and ticket.expires >= time.monotonic() else None


def _web():
    return current_app.extensions[WEB]


def widget_caller(room: str) -> tuple[Caller, Ticket | None]:
    """Who views this widget, and their ticket if any; a room they may not see is a 404."""
    ticket = None
    key = request.headers.get(TICKET_HEADER)
    if key:
        ticket = _web().tickets.get(key)
        if ticket is None or ticket.room != room:
            raise unauthorized("this widget's ticket has expired: reload the page that embeds it")
        who = ticket.caller
    else:
        who = page_caller(required=False)
        if who is None:
            raise unauthorized("the embedding site must pass a ticket (see the README's widget section)")
    if not who.can(Capability.TRANSCRIPT):
        raise room_not_found(room)
    return who, ticket


@bp.post("/widget/tickets")
def issue_ticket():
    """For the embedding site's server: a ticket for one of its users and one room."""
    who = caller(Capability.TRANSCRIPT)
    if who.role is Role.ANONYMOUS:
        raise unauthorized("a bearer token is required")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("room"), str):
        raise bad_parameter("room", "send a JSON object with the room's JID in 'room'")
    room = visible_room(who, body["room"])
    credentials = {name: body[name] for name in ("jid", "password", "nick") if body.get(name) is not None}
    for name, value in credentials.items():
        if not isinstance(value, str) or len(value) > 1024:
            raise bad_parameter(name, "must be a string")
    key = _web().tickets.issue(Ticket(who, room, time.monotonic() + TICKET_SECONDS))
    # Credentials go back in the fragment (never sent to a server) for the widget's script, not kept here.
    fragment = urlencode({"ticket": key, **credentials})
    url = url_for("widget.page", room=room, _external=True) + "#" + fragment
    expires = format_time(utcnow() + timedelta(seconds=TICKET_SECONDS))
    return json_response(
        {"ticket": key, "url": url, "expires_at": expires, "credentials": bool(credentials.get("password"))}
    )


@bp.get("/widget/<room>")
def page(room: str):
    return render_template(
        "web/widget.html",
        room=room,
        join_link="xmpp:" + quote(room, safe="@.-_") + "?join",
        poll_seconds=1.5,
        websocket=api().settings.widget_websocket_url,
    )


@bp.get("/widget/<room>/activity")
def activity(room: str):
    who, _ = widget_caller(room)
    room = visible_room(who, room)
    text = request.args.get("cursor")
    if text:
        state = decode_cursor(text, "widget")
        if not (isinstance(state, dict) and widget_feed.valid_cursor(state)):
            raise bad_parameter("cursor", "is not a cursor this widget issued")
        items, state = widget_feed.since(api().store, room, state)
    else:
        items, state = widget_feed.recent(transcripts(), room)
    return json_response({"items": items, "cursor": encode_cursor(state, "widget")})
