"""The embeddable room widget: ``/widget/{room}``, its live feed and its tickets.

Who may view: the embedding site's server asks for a ticket (``POST
/widget/tickets`` with its API token, naming its user as for any API call) and
puts it in the iframe's URL *fragment* (``/widget/ROOM#ticket=...``), which
browsers never send to servers, so it reaches no access log. A ticket is signed
with the server key and stands for that caller (its token by id) and that room
only, for 8 hours; the token and the room permission are checked again on every
poll, by whichever API process serves it. Without a ticket the widget serves a signed-in page user (same site) or,
when anonymous read is on, public rooms.

Join is the browser's own business: the widget's script (``static/xmpp.js``, ``xmpp-room.js``)
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

from datetime import timedelta
from urllib.parse import quote, urlencode

from flask import Blueprint, g, render_template, request, url_for

from archive.times import format_time, utcnow

from .. import audit
from ..access import Caller
from ..context import api, caller, json_response, visible_room
from ..errors import bad_parameter, room_not_found, unauthorized
from ..params import MAX_CURSOR_CHARS, Params, decode_cursor, encode_cursor, json_body, refuse_unknown
from ..roles import Capability, Role
from ..signing import SignatureError
from ..transcript import transcripts
from . import widget_feed
from .auth import page_caller

bp = Blueprint("widget", __name__)

TICKET_SECONDS = 8 * 3600
TICKET_PURPOSE = "widget ticket"
TICKET_HEADER = "X-Widget-Ticket"
TICKET_FIELDS = ("room", "jid", "password", "nick")  # a ticket request's body; after the room, the credentials


def ticket_for(who: Caller, room: str) -> str:
    """A ticket standing for ``who`` (its token by id, and site user) and ``room``, signed with the
    server key: any API process verifies it, none keeps it."""
    return api().signer.sign([room, who.token_id, who.user], TICKET_PURPOSE, ttl=TICKET_SECONDS)


def ticket_caller(key: str, room: str) -> Caller:
    """The caller a ticket stands for, resolved again now (a revoked token ends its tickets)."""
    try:
        value = api().signer.verify(key, TICKET_PURPOSE)
    except SignatureError as e:
        # Expiry is the ordinary end of a ticket (a page left open); anything else is the embedding site's to fix.
        if e.expired:
            raise unauthorized("this widget's ticket has expired: reload the page that embeds it") from None
        raise unauthorized(f"{e}: the embedding site asks POST /widget/tickets for one") from None
    # The ticket names the room as archived; the address may name it in another case (``RoomNames``).
    if not (isinstance(value, list) and len(value) == 3 and value[0] in (room, api().room_named(room))
            and isinstance(value[1], str)):
        raise unauthorized("this widget's ticket is for another room")
    user = value[2] if isinstance(value[2], str) else None
    return api().authorizer.caller_for_token_id(value[1], user)


def widget_caller(room: str) -> Caller:
    """Who views this widget; a room they may not see is a 404."""
    key = request.headers.get(TICKET_HEADER)
    if key:
        who = ticket_caller(key, room)
    else:
        who = page_caller(required=False)
        if who is None:
            raise unauthorized("no ticket and no sign-in: sign in on this archive's pages (a widget embedded by another "
                               "site gets a ticket from it: the README's widget section)")
    g.caller = who  # whom the audit trail records
    if not who.can(Capability.TRANSCRIPT):
        raise room_not_found(room)
    return who


def _is_text(value: str) -> bool:
    """Whether a JSON string is text: its escapes may make lone surrogates (``"\\ud800"``), which no URL
    (the ticket's fragment) can carry."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


@bp.post("/widget/tickets")
def issue_ticket():
    """For the embedding site's server: a ticket for one of its users and one room."""
    who = caller(Capability.TRANSCRIPT)
    if who.role is Role.ANONYMOUS:
        raise unauthorized("a bearer token is required")
    body = json_body(request, "a JSON object with the room's JID in 'room'")
    if not isinstance(body, dict) or not isinstance(body.get("room"), str):
        raise bad_parameter("room", "send a JSON object with the room's JID in 'room'")
    refuse_unknown(body, TICKET_FIELDS)
    room = visible_room(who, body["room"])
    # A null is refused as any other non-string, not read as left out: a site sending one meant something.
    credentials = {name: body[name] for name in TICKET_FIELDS[1:] if name in body}
    for name, value in credentials.items():
        if not (isinstance(value, str) and len(value) <= 1024 and _is_text(value)):
            raise bad_parameter(name, "must be a string (of at most 1024 characters); leave it out for none")
    key = ticket_for(who, room)
    # Credentials go back in the fragment (never sent to a server) for the widget's script, not kept here.
    fragment = urlencode({"ticket": key, **credentials})
    url = url_for("widget.page", room=room, _external=True) + "#" + fragment
    expires = format_time(utcnow() + timedelta(seconds=TICKET_SECONDS))
    return json_response(
        {"ticket": key, "url": url, "expires_at": expires, "credentials": bool(credentials.get("password"))}
    )


@bp.get("/widget/<room>")
def page(room: str):
    # Who views is not known here (a ticket rides in the fragment, never sent): the page serves any room address,
    # its feed tells whether the viewer may see it, so that no one learns from the page which rooms exist.
    return render_template(
        "web/widget.html",
        room=room,
        join_link="xmpp:" + quote(room, safe="@.-_") + "?join",
        poll_seconds=1.5,
        websocket=api().settings.widget_websocket_url,
    )


def author_secret() -> bytes:
    """The key of the feed's author keys (``widget_feed.author_key``): the server's oldest signing key still
    listed, so that the keys stay as they were across a rotation (a widget compares keys of lines read at
    different times) and change only when that key is retired."""
    return api().signer.keys.oldest().secret


@bp.get("/widget/<room>/activity")
def activity(room: str):
    who = widget_caller(room)
    room = visible_room(who, room)
    text = Params(request.args, ("cursor",)).text("cursor", max_length=MAX_CURSOR_CHARS)
    if text:
        state = decode_cursor(text, "widget")
        if not (isinstance(state, dict) and widget_feed.valid_cursor(state)):
            raise bad_parameter("cursor", "is not a cursor this widget issued")
        items, state = widget_feed.since(transcripts(), room, state, presence=api().views.presence,
                                         secret=author_secret())
    else:
        items, state = widget_feed.recent(transcripts(), room, presence=api().views.presence, secret=author_secret())
    audit.results(len(items))
    return json_response({"items": items, "cursor": encode_cursor(state, "widget")})
