"""Response headers of every page: a strict Content-Security-Policy and friends.

No inline script runs: scripts are files under ``/static``; a template that
needs an inline one marks it with ``nonce="{{ csp_nonce() }}"``. Pages may not
be framed; the widget may be framed by the sources of ``[api]
widget_frame_ancestors``, and its script may open a WebSocket to ``[api]
widget_websocket_url`` (the XMPP server's endpoint) and nowhere else.
"""

from __future__ import annotations

import functools
import secrets
from urllib.parse import urlsplit

from flask import g, request

from ..context import api


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def frame_ancestors(widget: bool, sources: tuple[str, ...]) -> str:
    if not widget:
        return "'none'"
    return " ".join(sources) if sources else "'none'"


def connect_sources(widget: bool, url: str) -> str:
    if not (widget and url):
        return "'self'"
    parts = urlsplit(url)
    return f"'self' {parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=64)
def _policy(widget: bool, frame_sources: tuple[str, ...], websocket_url: str) -> tuple[str, str]:
    """The policy's text before and after the nonce: the same for every response of a kind and
    settings, so it is composed once, not on every response."""
    before, after = "; ".join(
        (
            "default-src 'none'",
            "script-src 'self' 'nonce-\x00'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect_sources(widget, websocket_url)}",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors(widget, frame_sources)}",
        )
    ).split("\x00", 1)  # the nonce's place: the first (a setting's text comes after it)
    return before, after


def add_security_headers(response):
    widget = request.path.startswith("/widget/")
    settings = api().settings
    before, after = _policy(widget, tuple(settings.widget_frame_ancestors), settings.widget_websocket_url)
    headers = response.headers
    headers["Content-Security-Policy"] = f"{before}{csp_nonce()}{after}"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    if not widget:
        headers["X-Frame-Options"] = "DENY"
    if response.mimetype == "text/html":
        headers["Cache-Control"] = "no-store"
    return response
