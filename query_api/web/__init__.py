"""Server-rendered web pages, sign-in and the embeddable room widget.

``register(app, config)`` adds them to the API's Flask app: the pages
(``pages.bp``), the widget (``widget.bp``), the security headers and the
in-memory state they keep (sign-in sessions, widget tickets).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from . import auth, pages, search_page, widget  # noqa: F401 (search_page adds its route to pages.bp)
from .security import add_security_headers, csp_nonce


@dataclass
class WebState:
    """What the pages and the widget keep in memory (nothing of it is ever written anywhere)."""

    sessions: auth.WebSessions
    tickets: widget.Tickets


def register(app: Flask, config) -> None:
    app.extensions[auth.WEB] = WebState(sessions=auth.WebSessions(), tickets=widget.Tickets())
    app.register_blueprint(pages.bp)
    app.register_blueprint(widget.bp)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, csp_nonce=csp_nonce)
    app.after_request(add_security_headers)
