"""Server-rendered web pages, sign-in and the embeddable room widget.

``register(app, config)`` adds them to the API's Flask app: the pages
(``pages.bp``), the widget (``widget.bp``), the security headers and the
in-memory state they keep (sign-in sessions, widget tickets, widget XMPP
sessions).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import Flask

from ..context import EXTENSION
from . import auth, compliance_page, pages, search_page, widget  # noqa: F401 (search_page, compliance_page add routes to pages.bp)
from .security import add_security_headers, csp_nonce
from .xmpp_session import ServerAddress, XmppSessions


@dataclass
class WebState:
    """What the pages and the widget keep in memory (nothing of it is ever written anywhere)."""

    sessions: auth.WebSessions
    tickets: widget.Tickets
    server: ServerAddress
    stopping: threading.Event
    _xmpp: XmppSessions | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def xmpp(self) -> XmppSessions:
        """The widget's XMPP sessions, started on the first Join (its loop thread costs nothing
        before); when the server stops, every session leaves its room."""
        with self._lock:
            if self._xmpp is None:
                self._xmpp = XmppSessions(self.server)
                threading.Thread(target=self._close_on_stop, name="widget-xmpp-stop", daemon=True).start()
            return self._xmpp

    def _close_on_stop(self) -> None:
        self.stopping.wait()
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._xmpp is not None:
                self._xmpp.close()
                self._xmpp = None


def register(app: Flask, config) -> None:
    xmpp = config.xmpp
    app.extensions[auth.WEB] = WebState(
        sessions=auth.WebSessions(),
        tickets=widget.Tickets(),
        server=ServerAddress(xmpp.host, xmpp.port, xmpp.tls, xmpp.ca_certs),
        stopping=app.extensions[EXTENSION].stopping,
    )
    app.register_blueprint(pages.bp)
    app.register_blueprint(widget.bp)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, csp_nonce=csp_nonce)
    app.after_request(add_security_headers)
