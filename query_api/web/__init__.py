"""Server-rendered web pages, sign-in and the embeddable room widget.

``register(app, config)`` adds them to the API's Flask app: the pages
(``pages.bp``), the widget (``widget.bp``) and the security headers. They keep
nothing in memory: sign-in sessions and widget tickets are values signed with
the server key (``query_api.signing``), so any process of the archive serves
any request.
"""

from __future__ import annotations

from flask import Flask

from . import api_docs, auth, compliance_page, pages, search_page, widget  # noqa: F401 (search_page, compliance_page add routes to pages.bp)
from .security import add_security_headers, csp_nonce


def register(app: Flask) -> None:
    app.register_blueprint(pages.bp)
    app.register_blueprint(widget.bp)
    app.register_blueprint(api_docs.bp)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, csp_nonce=csp_nonce)
    app.after_request(add_security_headers)
