"""Who is calling and which rooms they may see: the one authorization interface.

``Authorizer.caller_from_request`` turns a request's bearer token (and, for a
``site`` token, the user it names) into a ``Caller``. Web pages that sign in
with a session cookie use ``Authorizer.caller_for_token`` with the token the
cookie stands for, so pages and API decide rooms exactly alike.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Protocol

from . import busy
from .cache import TtlCache
from .errors import ApiError, unauthorized
from .escaping import log_safe
from .roles import ROLE_CAPABILITIES, Capability, Role
from .settings import ApiSettings
from .site_call import SiteCall
from .tokens import TokenInfo, TokenStore, grant_glob

log = logging.getLogger(__name__)

PARALLEL_ASKS = 8  # permission callbacks in flight at once
# Bytes of one call's query string at most: web servers refuse longer request lines (nginx and Apache at 8 KiB,
# Python's http.server at 64 KiB), so a request about many rooms asks in several calls.
MAX_ASK_BYTES = 4000
MAX_ANSWER_BYTES = 1024 * 1024


class RoomScope(Protocol):
    """Which rooms a caller may see; ``everything`` lets searches skip the room filter."""

    everything: bool

    def allows(self, room: str) -> bool: ...

    def allowed_rooms(self, rooms: list[str]) -> list[str]:
        """Those of ``rooms`` it allows, in the same order."""


class AllRooms:
    everything = True

    def allows(self, room: str) -> bool:
        return True

    def allowed_rooms(self, rooms: list[str]) -> list[str]:
        return rooms


class RoomPatterns:
    """Rooms granted by JID, in any case, or by glob (``tokens.grant_glob``)."""

    everything = False

    def __init__(self, patterns: Iterable[str]):
        self.rooms: set[str] = set()
        self.globs: list[str] = []
        for pattern in (p.lower() for p in patterns):
            glob = grant_glob(pattern)
            if glob is None:
                self.rooms.add(pattern)
            else:
                self.globs.append(glob)

    def allows(self, room: str) -> bool:
        room = room.lower()
        return room in self.rooms or any(fnmatchcase(room, p) for p in self.globs)

    def allowed_rooms(self, rooms: list[str]) -> list[str]:
        return [room for room in rooms if self.allows(room)]


class PermissionCallback:
    """Asks the collaboration site which rooms a user may see, as Openfire asks Clearspace.

    One call per request (about ``MAX_ASK_BYTES`` of room names each: more rooms, more calls, made at once):
    ``GET url?user=U&room=R1&room=R2...`` answered with ``{"allowed": [the rooms
    asked that U may see]}`` (a single room asked may also be answered
    ``{"allowed": true|false}``). The calls are given up at ``timeout`` seconds
    (the request thread and the calls' threads are freed then, whatever the site
    does). Answers are cached per user and room for ``cache_seconds``; an error,
    a timeout or any other answer means "not allowed" and is not cached, so the
    next request asks again.
    """

    def __init__(self, url: str, *, token: str = "", timeout: float = 2.0, cache_seconds: float = 30.0):
        self.url = url
        self.token = token
        self.timeout = timeout
        self._cache: TtlCache[bool] = TtlCache(cache_seconds, max_entries=100_000)
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL_ASKS, thread_name_prefix="permission")

    def allowed(self, user: str, room: str) -> bool:
        return bool(self.allowed_rooms(user, [room]))

    def allowed_rooms(self, user: str, rooms: list[str]) -> list[str]:
        """Those of ``rooms`` the user may see, in the same order; one call for the uncached ones."""
        known = {room: self._cache.get(room_key(user, room)) for room in rooms}
        unknown = list(dict.fromkeys(room for room, answer in known.items() if answer is None))
        if unknown:
            answers = self._ask_within_deadline(user, unknown)
            for room, answer in answers.items():
                self._cache.put(room_key(user, room), answer)
            known.update({room: answers.get(room, False) for room in unknown})
        return [room for room in rooms if known[room]]

    def _ask_within_deadline(self, user: str, rooms: list[str]) -> dict[str, bool]:
        """The answers the calls about ``rooms`` gave within the deadline (a room no call answered: none)."""
        calls = [(batch, SiteCall()) for batch in ask_batches(user, rooms)]
        try:
            futures = {self._pool.submit(self._ask, user, batch, call): call for batch, call in calls}
        except RuntimeError:  # shut down
            return {}
        with busy.waiting():  # on another host: the request's turn serves others meanwhile
            done, given_up = wait(futures, timeout=self.timeout)
        if given_up:
            log.warning("permission callback gave no answer within %.1f s (%d rooms): denied", self.timeout, len(rooms))
        for future in given_up:
            # Neither waiting for a thread nor holding one: a slow site's calls, left to go on, held the pool's
            # threads and kept every later call waiting behind them (denied) after the site had recovered.
            if not future.cancel():
                futures[future].abandon()
        answers: dict[str, bool] = {}
        for future in done:
            answers.update(future.result() or {})
        return answers

    def _ask(self, user: str, rooms: list[str], call: SiteCall) -> dict[str, bool] | None:
        separator = "&" if urllib.parse.urlparse(self.url).query else "?"
        try:
            # A room from a JSON body (a ticket request) may hold a lone surrogate, which no URL can carry:
            # urlencode's UnicodeEncodeError is a ValueError, a denial like any other failure.
            query = urllib.parse.urlencode([("user", user), *(("room", room) for room in rooms)])
            request = urllib.request.Request(self.url + separator + query, headers={"Accept": "application/json"})
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            with call.open(request, self.timeout) as response:
                answer = json.loads(response.read(MAX_ANSWER_BYTES))
        except Exception as e:
            # Whatever the site did (refused, timed out, broke off its answer, sent a status line or JSON no parser
            # takes: http.client's errors are not OSErrors, a JSON nested too deep is a RecursionError), the
            # rooms are denied: an error escaping here was re-raised in the request, a 500 for every site user.
            if not call.abandoned:
                log.warning("permission callback failed for user %s (%d rooms): %s", log_safe(user), len(rooms),
                            log_safe(f"{type(e).__name__}: {e}"))
            return None
        decided = self.decide(answer, rooms)
        if decided is None:
            log.warning("permission callback answered without a list of rooms in 'allowed' for user %s", log_safe(user))
        return decided

    @staticmethod
    def decide(answer, rooms: list[str]) -> dict[str, bool] | None:
        """Each asked room's answer, or None if ``answer`` is not one the protocol allows."""
        allowed = answer.get("allowed") if isinstance(answer, dict) else None
        if isinstance(allowed, bool) and len(rooms) == 1:
            return {rooms[0]: allowed}
        if not isinstance(allowed, list) or not all(isinstance(room, str) for room in allowed):
            return None
        granted = set(allowed)
        return {room: room in granted for room in rooms}


def ask_batches(user: str, rooms: list[str]) -> list[list[str]]:
    """``rooms`` in batches whose query strings (``user=U&room=R1...``) hold ``MAX_ASK_BYTES`` at most (a room
    alone beyond it goes in a batch of its own). Sizes are reckoned from bytes that every string can be made of:
    a room no URL can carry (a lone surrogate) is still placed, and its call fails, as a denial."""
    batches: list[list[str]] = []
    size = MAX_ASK_BYTES
    for room in rooms:
        cost = len("&room=") + _encoded_length(room)
        if size + cost > MAX_ASK_BYTES:
            batches.append([])
            size = len("user=") + _encoded_length(user)
        batches[-1].append(room)
        size += cost
    return batches


def _encoded_length(text: str) -> int:
    return len(urllib.parse.quote_plus(text.encode("utf-8", "surrogatepass")))


def room_key(user: str, room: str) -> tuple[str, str]:
    return (user, room)


class SiteUserRooms:
    """The rooms one site user may see, as the permission callback says."""

    everything = False

    def __init__(self, callback: PermissionCallback, user: str):
        self.callback = callback
        self.user = user

    def allows(self, room: str) -> bool:
        return self.callback.allowed(self.user, room)

    def allowed_rooms(self, rooms: list[str]) -> list[str]:
        return self.callback.allowed_rooms(self.user, rooms)


def names_a_jid(actor: str | None) -> bool:
    """Whether an ``actor`` (a kick's or ban's author: a nick, or a real JID when the room gave
    no nick) is a real JID, which only compliance may see."""
    return actor is not None and "@" in actor


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a role, the rooms it may see, and for whom it acts."""

    role: Role
    scope: RoomScope
    token_id: str | None = None
    user: str | None = None

    def can(self, capability: Capability) -> bool:
        return capability in ROLE_CAPABILITIES[self.role]

    def may_see(self, room: str) -> bool:
        return self.scope.allows(room)

    def visible(self, rooms: Iterable[str]) -> list[str]:
        """Those of ``rooms`` the caller may see, in the same order."""
        return self.scope.allowed_rooms(list(rooms))

    @property
    def sees_jids(self) -> bool:
        """Real JIDs are for compliance only."""
        return self.role is Role.COMPLIANCE

    @property
    def sees_originals(self) -> bool:
        """Earlier versions of edited messages and retracted messages are for compliance only."""
        return self.role is Role.COMPLIANCE


class Authorizer:
    """Resolves callers from tokens; the same rules for the API and the web pages."""

    def __init__(self, settings: ApiSettings, tokens: TokenStore, permission: PermissionCallback | None = None):
        self.settings = settings
        self.tokens = tokens
        if permission is None and settings.permission_url:
            permission = PermissionCallback(
                settings.permission_url,
                token=settings.permission_token,
                timeout=settings.permission_timeout,
                cache_seconds=settings.permission_cache_seconds,
            )
        self.permission = permission

    def caller_from_request(self, request) -> Caller:
        """The caller of a Flask/Werkzeug request: 401 without a valid token (unless anonymous read is on)."""
        header = request.headers.get("Authorization")
        if header is None:
            return self.anonymous()
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("use 'Authorization: Bearer <token>'")
        return self.caller_for_token(token.strip(), request.headers.get(self.settings.user_header))

    def caller_for_token(self, token: str, user: str | None = None) -> Caller:
        """The caller a token stands for; ``user`` is the site user a ``site`` token acts for."""
        return self._caller(self.tokens.lookup(token), user)

    def caller_for_token_id(self, token_id: str, user: str | None = None) -> Caller:
        """The same, for a token named by its id in a value this server signed (session, ticket)."""
        return self._caller(self.tokens.lookup_id(token_id), user)

    def still_valid(self, who: Caller) -> bool:
        """Whether ``who`` may still act: its token not revoked, anonymous read still on."""
        if who.token_id is None:
            return who.role is Role.ANONYMOUS and self.settings.anonymous_read
        return self.tokens.lookup_id(who.token_id) is not None

    def _caller(self, info: TokenInfo | None, user: str | None) -> Caller:
        if info is None:
            raise unauthorized("unknown or revoked token")
        if info.role is Role.COMPLIANCE:
            return Caller(Role.COMPLIANCE, AllRooms(), info.id)
        if info.role is Role.ANALYST:
            return Caller(Role.ANALYST, RoomPatterns(info.rooms), info.id)
        user = (user or "").strip()
        if not user or len(user) > 1024:
            raise ApiError(400, "missing_user", f"a site token must name the user it acts for in {self.settings.user_header}")
        if self.permission is not None:
            return Caller(Role.SITE, SiteUserRooms(self.permission, user), info.id, user)
        return Caller(Role.SITE, RoomPatterns(info.rooms), info.id, user)

    def anonymous(self) -> Caller:
        if not self.settings.anonymous_read:
            raise unauthorized("a bearer token is required")
        return Caller(Role.ANONYMOUS, RoomPatterns(self.settings.public_rooms))
