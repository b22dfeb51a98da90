"""Response headers of every page: a strict Content-Security-Policy and friends.

No inline script runs: scripts are files under ``/static``; a template that
needs an inline one marks it with ``nonce="{{ csp_nonce() }}"``. Pages may not
be framed; the widget may be framed by the sources of ``[api]
widget_frame_ancestors``, and its script may open a WebSocket to ``[api]
widget_websocket_url`` (the XMPP server's endpoint) and nowhere else.
"""

from __future__ import annotations

import secrets

from urllib.parse import urlsplit

from flask import g, request

from ..context import api


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def frame_ancestors(widget: bool) -> str:
    if not widget:
        return "'none'"
    sources = api().settings.widget_frame_ancestors
    return " ".join(sources) if sources else "'none'"


def connect_sources(widget: bool) -> str:
    url = api().settings.widget_websocket_url
    if not (widget and url):
        return "'self'"
    parts = urlsplit(url)
    return f"'self' {parts.scheme}://{parts.netloc}"


def add_security_headers(response):
    widget = request.path.startswith("/widget/")
    response.headers["Content-Security-Policy"] = "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' 'nonce-{csp_nonce()}'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect_sources(widget)}",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors(widget)}",
        )
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not widget:
        response.headers["X-Frame-Options"] = "DENY"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response
