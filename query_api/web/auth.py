"""Sign-in for the pages: the API's tokens behind a signed HttpOnly session cookie, and CSRF checks.

The sign-in form takes an API token (and, for a ``site`` token, the site user it
acts for). The cookie holds a value signed with the server key (``query_api.signing``)
naming the token by its id (never the token), the user and a random session id,
valid for ``SESSION_SECONDS``: any API process of the archive can verify it, and
none keeps anything in memory. Every request resolves the caller again through
the API's ``Authorizer.caller_for_token_id``, so pages and API grant exactly the
same rooms, and a revoked token stops working on the pages as in the API (within
``[api] token_cache_seconds``). Signing out ends the session in the store
(``query_api.sessions``), so a copy of the cookie is refused afterwards by every
process; revoking the token (or retiring the signing key) ends every session
made with it.

Cookies are ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` whenever the
request came over https (directly, or through a proxy that says so).

CSRF: every form carries a token, a MAC under the server key of the session
cookie (or, before sign-in, of a random pre-session cookie); a POST without the
matching token, or with an ``Origin`` other than this server's, is refused.
"""

from __future__ import annotations

import secrets
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from flask import g, request

from ..access import Caller
from ..context import api
from ..errors import ApiError
from ..signing import SignatureError

SESSION_COOKIE = "chat_archive_session"
PRESESSION_COOKIE = "chat_archive_presession"
SESSION_SECONDS = 12 * 3600
SESSION_PURPOSE = "web session"
MAX_USER_CHARS = 1024
MAX_SESSION_ID_CHARS = 64


class SignInRequired(Exception):
    """The page needs a signed-in caller (the blueprint answers with the sign-in form)."""


class Session(NamedTuple):
    token_id: str
    user: str | None
    id: str
    """Random, so that signing out can end this session and no other of the same token and user."""


def session_of(cookie: str | None) -> Session | None:
    """The session of a cookie this server signed and that has not expired (ended or not), else None."""
    if not cookie:
        return None
    try:
        value = api().signer.verify(cookie, SESSION_PURPOSE)
    except SignatureError:
        return None
    if not (isinstance(value, list) and len(value) == 3):
        return None  # without a session id (made before sign-out was kept in the store) it could not be ended
    token_id, user, session_id = value
    if not (isinstance(token_id, str) and isinstance(session_id, str) and len(session_id) <= MAX_SESSION_ID_CHARS):
        return None
    if not (user is None or (isinstance(user, str) and len(user) <= MAX_USER_CHARS)):
        return None
    return Session(token_id, user, session_id)


def session_caller() -> Caller | None:
    """The caller of this browser's sign-in session, if it has one that is still good."""
    if "session_caller" not in g:
        who = None
        session = session_of(request.cookies.get(SESSION_COOKIE))
        if session is not None and not api().sessions.ended(session.id):
            try:
                who = api().authorizer.caller_for_token_id(session.token_id, session.user)
            except ApiError:  # revoked meanwhile, or the site user is no longer acceptable
                who = None
        g.session_caller = who
    return g.session_caller


def page_caller(*, required: bool = True) -> Caller | None:
    """The signed-in caller; else the anonymous caller where anonymous read is on; else sign in."""
    who = session_caller()
    if who is None and api().settings.anonymous_read:
        who = api().authorizer.anonymous()
    if who is None and required:
        raise SignInRequired()
    return who


def signed_in() -> bool:
    return session_caller() is not None


def sign_in(token: str, user: str | None) -> str:
    """A session cookie's value for a token that is valid now (raises the API's 401/400 otherwise)."""
    who = api().authorizer.caller_for_token(token, user)
    session = [who.token_id, who.user, secrets.token_urlsafe(16)]
    return api().signer.sign(session, SESSION_PURPOSE, ttl=SESSION_SECONDS)


def sign_out() -> None:
    """End this browser's session for every process (the cookie itself is the response's to delete)."""
    session = session_of(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        # It was signed at most SESSION_SECONDS ago: it expires by then, and need not be kept longer.
        api().sessions.end(session.id, until=time.time() + SESSION_SECONDS)


def set_cookie(response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=request.is_secure, samesite="Lax", path="/"
    )


def _csrf_binding() -> str:
    if signed_in():
        return "s:" + request.cookies[SESSION_COOKIE]
    if "presession" not in g:
        g.presession = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    return "p:" + g.presession


def csrf_token() -> str:
    """The token this browser's forms must send back (template global ``csrf_token()``)."""
    return api().signer.mac("csrf", _csrf_binding())


def keep_presession(response):
    """Give a browser that was shown a pre-sign-in form the cookie its CSRF token is bound to."""
    presession = g.get("presession")
    if presession and request.cookies.get(PRESESSION_COOKIE) != presession:
        set_cookie(response, PRESESSION_COOKIE, presession, max_age=3600)
    return response


def _our_origin(origin: str) -> bool:
    try:
        return urlsplit(origin).netloc == request.host
    except ValueError:  # no URL at all (``http://[``): nobody's origin, ours least of all
        return False


def check_csrf() -> None:
    """Refuse a state-changing form post that did not come from one of our own pages."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not _our_origin(origin):
        raise ApiError(403, "csrf", "this form was posted from another site")
    sent = request.form.get("csrf_token", "")
    if not (len(sent) <= 200 and api().signer.check_mac("csrf", _csrf_binding(), sent)):
        raise ApiError(403, "csrf", "the form has expired: reload the page and try again")
