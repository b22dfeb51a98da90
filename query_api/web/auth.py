"""Sign-in for the pages: the API's tokens behind an HttpOnly session cookie, and CSRF checks.

The sign-in form takes an API token (and, for a ``site`` token, the site user it
acts for). The server keeps token and user in memory under a random session id;
the cookie holds only that id. Every request resolves the caller again through
the API's ``Authorizer.caller_for_token``, so pages and API grant exactly the
same rooms, and a revoked token stops working on the pages as in the API.
Sessions live in the server process: a restart signs everyone out.

Cookies are ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` whenever the
request came over https (directly, or through a proxy that tells waitress so,
e.g. ``X-Forwarded-Proto`` with waitress' ``trusted_proxy``).

CSRF: every form carries a token, an HMAC of the session id (or, before sign-in,
of a random pre-session cookie) under a per-process secret; a POST without the
matching token, or with an ``Origin`` other than this server's, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import current_app, g, request

from ..access import Caller
from ..context import api
from ..errors import ApiError

SESSION_COOKIE = "chat_archive_session"
PRESESSION_COOKIE = "chat_archive_presession"
SESSION_IDLE_SECONDS = 12 * 3600
MAX_SESSIONS = 100_000
WEB = "chat_archive_web"


@dataclass
class WebSession:
    token: str
    user: str | None
    last_used: float = field(default_factory=time.monotonic)


class WebSessions:
    """Signed-in browsers by session id, in memory; idle sessions expire."""

    def __init__(self, idle_seconds: float = SESSION_IDLE_SECONDS):
        self.idle_seconds = idle_seconds
        self.secret = secrets.token_bytes(32)
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def create(self, token: str, user: str | None) -> str:
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            while len(self._sessions) >= MAX_SESSIONS:  # the oldest sign-in goes first
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session_id] = WebSession(token, user)
        return session_id

    def get(self, session_id: str | None) -> WebSession | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or time.monotonic() - session.last_used > self.idle_seconds:
                self._sessions.pop(session_id, None)
                return None
            session.last_used = time.monotonic()
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if now - s.last_used > self.idle_seconds]:
            del self._sessions[key]


class SignInRequired(Exception):
    """The page needs a signed-in caller (the blueprint answers with the sign-in form)."""


def sessions() -> WebSessions:
    return current_app.extensions[WEB].sessions


def page_caller(*, required: bool = True) -> Caller | None:
    """The signed-in caller; else the anonymous caller where anonymous read is on; else sign in."""
    if "page_caller" in g:
        return g.page_caller
    who = None
    session = sessions().get(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        try:
            who = api().authorizer.caller_for_token(session.token, session.user)
        except ApiError:  # revoked meanwhile, or the site user is no longer acceptable
            sessions().drop(request.cookies.get(SESSION_COOKIE))
    if who is None and api().settings.anonymous_read:
        who = api().authorizer.anonymous()
    if who is None and required:
        raise SignInRequired()
    g.page_caller = who
    return who


def signed_in() -> bool:
    return sessions().get(request.cookies.get(SESSION_COOKIE)) is not None


def sign_in(token: str, user: str | None) -> str:
    """A new session for a token that is valid now (raises the API's 401/400 otherwise)."""
    api().authorizer.caller_for_token(token, user)
    return sessions().create(token, user)


def set_cookie(response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=request.is_secure, samesite="Lax", path="/"
    )


def _csrf_binding() -> str:
    session_id = request.cookies.get(SESSION_COOKIE)
    if sessions().get(session_id) is not None:
        return "s:" + session_id
    if "presession" not in g:
        g.presession = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    return "p:" + g.presession


def csrf_token() -> str:
    """The token this browser's forms must send back (template global ``csrf_token()``)."""
    return hmac.new(sessions().secret, _csrf_binding().encode(), hashlib.sha256).hexdigest()


def keep_presession(response):
    """Give a browser that was shown a pre-sign-in form the cookie its CSRF token is bound to."""
    presession = g.get("presession")
    if presession and request.cookies.get(PRESESSION_COOKIE) != presession:
        set_cookie(response, PRESESSION_COOKIE, presession, max_age=3600)
    return response


def check_csrf() -> None:
    """Refuse a state-changing form post that did not come from one of our own pages."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise ApiError(403, "csrf", "this form was posted from another site")
    sent = request.form.get("csrf_token", "")
    if not hmac.compare_digest(sent, csrf_token()):
        raise ApiError(403, "csrf", "the form has expired: reload the page and try again")
