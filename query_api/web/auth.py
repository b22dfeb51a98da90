"""Sign-in for the pages: the API's tokens behind an HttpOnly session cookie, and CSRF checks.

The sign-in form takes an API token (and, for a ``site`` token, the site user it
acts for). The session cookie is a signed value (``query_api.signing``) naming
the token by its id and the site user, never the token itself; it lasts
``SESSION_SECONDS``. Any server process of the archive accepts it (a restart
signs no one out), and every request resolves the caller again through
``Authorizer.caller_for_token_id``, so pages and API grant exactly the same
rooms, and a revoked token signs its sessions out within ``[api]
token_cache_seconds``. Signing out deletes the cookie.

Cookies are ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` whenever the
request came over https (directly, or through a proxy that tells waitress so,
e.g. ``X-Forwarded-Proto`` with waitress' ``trusted_proxy``).

CSRF: every form carries a token, a MAC under the server key of the session
cookie (or, before sign-in, of a random pre-session cookie); a POST without the
matching token, or with an ``Origin`` other than this server's, is refused.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import g, request

from ..access import Caller
from ..context import api
from ..errors import ApiError
from ..signing import SignatureError

SESSION_COOKIE = "chat_archive_session"
PRESESSION_COOKIE = "chat_archive_presession"
SESSION_SECONDS = 12 * 3600
SESSION = "sign-in session"


class SignInRequired(Exception):
    """The page needs a signed-in caller (the blueprint answers with the sign-in form)."""


def _session_caller() -> Caller | None:
    """The caller of this request's session cookie; None without a valid one."""
    if "session_caller" not in g:
        g.session_caller = None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            try:
                claims = api().signer.verify(cookie, SESSION)
                g.session_caller = api().authorizer.caller_for_token_id(claims["t"], claims.get("u"))
            except (SignatureError, ApiError, KeyError, TypeError):  # expired, revoked, or not ours
                pass
    return g.session_caller


def page_caller(*, required: bool = True) -> Caller | None:
    """The signed-in caller; else the anonymous caller where anonymous read is on; else sign in."""
    if "page_caller" in g:
        return g.page_caller
    who = _session_caller()
    if who is None and api().settings.anonymous_read:
        who = api().authorizer.anonymous()
    if who is None and required:
        raise SignInRequired()
    g.page_caller = who
    return who


def signed_in() -> bool:
    return _session_caller() is not None


def sign_in(token: str, user: str | None) -> str:
    """The session cookie's value for a token that is valid now (raises the API's 401/400 otherwise)."""
    who = api().authorizer.caller_for_token(token, user)
    return api().signer.sign({"t": who.token_id, "u": who.user}, SESSION, ttl=SESSION_SECONDS)


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


def check_csrf() -> None:
    """Refuse a state-changing form post that did not come from one of our own pages."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise ApiError(403, "csrf", "this form was posted from another site")
    if not api().signer.check_mac("csrf", _csrf_binding(), request.form.get("csrf_token", "")):
        raise ApiError(403, "csrf", "the form has expired: reload the page and try again")
