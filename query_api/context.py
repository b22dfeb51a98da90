"""What every endpoint needs: the app's collaborators, the caller, the room checks, JSON answers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from flask import Response, current_app, g, request

from archive.health import Health
from archive.room_names import RoomNames
from archive.store import EventStore
from projections.search import SearchIndex
from projections.views import Views

from .access import Authorizer, Caller
from .cache import TtlCache
from .errors import ApiError, forbidden, room_not_found, unauthorized
from .metrics import RequestMetrics
from .roles import DOING, ROLE_CAPABILITIES, TOKEN_ROLES, Capability, Role
from .sessions import EndedSessions
from .settings import ApiSettings
from .deadline import DeadlinePool
from .signing import Signer
from .streams import StreamSlots, client_key, unseen_end_seconds

if TYPE_CHECKING:
    from .exports.jobs import ExportJobs  # which builds bundles with the endpoints' helpers

EXTENSION = "chat_archive"
_json = msgspec.json.Encoder()


@dataclass
class ApiContext:
    """The collaborators handed to ``create_app``, shared by all requests."""

    settings: ApiSettings
    store: EventStore
    authorizer: Authorizer
    views: Views
    search: SearchIndex
    signer: Signer
    """Signs and verifies what the server hands out (cursors, tickets, sessions)."""
    sessions: EndedSessions
    """Sign-in sessions ended by signing out (kept in the store, so every process refuses them)."""
    exports: ExportJobs
    """Export jobs: bundles written in the background to ``[api] export_dir``."""
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    stopping: threading.Event = field(default_factory=threading.Event)
    health: Health | None = None
    """The process's long-running parts (``archive.health``), for ``/healthz``."""
    _rooms: TtlCache = field(default_factory=lambda: TtlCache(1.0))
    searches: DeadlinePool = field(default=None)
    """Searches run with ``[api] search_timeout``, at most half the threads at once (more wait for a slot)."""
    streams: StreamSlots = field(default=None)
    """Streamed answers (replay, export, follow) hold a server thread each: at most half the
    threads may, and a few per client (``query_api.streams``)."""
    _visible: TtlCache = field(default_factory=lambda: TtlCache(1.0, max_entries=10_000))
    summaries: TtlCache = field(default_factory=lambda: TtlCache(2.0, max_entries=1000))
    """Room summaries of recent ``/rooms`` pages: a busy site lists the same rooms for many users."""

    def __post_init__(self) -> None:
        if self.searches is None:
            self.searches = DeadlinePool(self.settings.threads // 2, "search")
        if self.streams is None:
            self.streams = StreamSlots(self.settings.threads // 2, self.settings.streams_per_client,
                                       unseen_end_seconds(self.settings.follow_heartbeat))

    def known_rooms(self) -> list[str]:
        """Every room with events, in JID order (briefly cached: a new room shows up within a second)."""
        return self._room_names().rooms

    def visible_rooms(self, who: Caller) -> list[str]:
        """The known rooms ``who`` may see, in JID order (briefly cached per token and site user:
        a search or a room list need not ask every room's permission again)."""
        if who.scope.everything:
            return self.known_rooms()
        key = (who.role, who.token_id, who.user)
        return self._visible.get_or_compute(key, lambda: who.visible(self.known_rooms()))

    def room_named(self, room: str) -> str | None:
        """The archived room ``room`` names: itself, else the room of that JID in another case (JIDs are not
        case-sensitive: Lobby@Conference.example.org is lobby@conference.example.org); None if there is none."""
        return self._room_names().named(room)

    def _room_names(self) -> RoomNames:
        return self._rooms.get_or_compute("rooms", lambda: RoomNames(self.store.rooms()))


def api() -> ApiContext:
    return current_app.extensions[EXTENSION]


def caller(capability: Capability, doing: str | None = None) -> Caller:
    """The request's caller, who must hold ``capability``: 401 if unknown (or anonymous and the
    capability needs a token), 403 if the role lacks it, saying what the request was ``doing`` (in the caller's
    terms, "place legal holds"; else the capability's ``DOING``) and which roles may.

    The role check comes before any room is looked at, so a 403 never says
    anything about a room.
    """
    who = g.get("caller")
    if who is None:
        who = g.caller = api().authorizer.caller_from_request(request)
    if not who.can(capability):
        if who.role is Role.ANONYMOUS:
            raise unauthorized(f"{capability.value} endpoints need a bearer token")
        raise refusal(who, capability, doing)
    return who


def refusal(who: Caller, capability: Capability, doing: str | None = None) -> ApiError:
    """The 403 of a role that lacks ``capability``, for the API and the pages alike: what the request was ``doing``
    in the caller's terms (else the capability's ``DOING``), and which roles may."""
    roles = [role.value for role in TOKEN_ROLES if capability in ROLE_CAPABILITIES[role]]
    return forbidden(f"the {who.role.value} role may not {doing or DOING[capability]}: only the "
                     f"{' and '.join(roles)} role{'s' if len(roles) > 1 else ''} may")


def visible_room(who: Caller, room: str) -> str:
    """The archived room ``room`` names (in any case, as JIDs are named) if the caller may see it; otherwise the
    same 404 either way. Callers go on with the room it gives: the views and the store name rooms as archived."""
    named = api().room_named(room)
    # Asked whether or not the room exists (about the name given where none is archived), so that no answer,
    # nor how long it takes, tells a room the caller may not see from one that does not exist.
    if not who.may_see(named or room) or named is None:
        raise room_not_found(room)
    return named


def limited_stream(who: Caller, response: Response) -> Response:
    """``response`` (a streamed answer) in one of the stream slots of ``who``: 429/503 if none is
    free; the server closes every response, finished or abandoned, which gives the slot back."""
    context, key = api(), client_key(who, request.remote_addr)
    context.streams.acquire(key)
    response.call_on_close(lambda: context.streams.release(key))
    # A client that reads nothing is cut off by the server, waitress' loop or gunicorn's socket timeout
    # (query_api.server, query_api.workers).
    return response


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_json.encode(body), status=status, mimetype="application/json")
