"""HTTP calls to another site that whoever waits for them can cut short (the permission callback).

A socket's timeout bounds each wait for bytes, not a call: a site that trickles its answer (a byte a second)
holds the thread making the call for as long as it likes, and the permission callback's threads are shared by
every request. ``SiteCall.abandon`` shuts the call's sockets down, which ends at once whatever read or write the
calling thread is blocked in (it then fails, as a call to a broken site does).
"""

from __future__ import annotations

import socket
import threading
import urllib.request


class SiteCall:
    """One call (urllib's ``open``: redirects and proxies from the environment as usual), abandonable."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._connections: list = []
        self.abandoned = False

    def open(self, request: urllib.request.Request, timeout: float):
        opener = urllib.request.build_opener(_HttpHandler(self), _HttpsHandler(self))
        return opener.open(request, timeout=timeout)

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            sockets = [*self._sockets, *(c.sock for c in self._connections if c.sock is not None)]
        for sock in sockets:
            _shut(sock)

    def _connection(self, http_class, *args, **kwargs):
        """An ``http.client`` connection whose sockets this call knows: the plain one as it is made (a TLS
        socket detaches it once its handshake begins) and the connection's own (TLS) one once connected."""
        connection = http_class(*args, **kwargs)
        create = connection._create_connection

        def connect(*a, **kw):
            sock = create(*a, **kw)
            with self._lock:
                self._sockets.append(sock)
                abandoned = self.abandoned
            if abandoned:  # given up on while it connected
                _shut(sock)
            return sock

        connection._create_connection = connect
        with self._lock:
            self._connections.append(connection)
        return connection


def _shut(sock: socket.socket) -> None:
    # Shut down, never closed here: the calling thread still owns the socket (a closed descriptor's number could
    # be another file's by the time that thread used it).
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected yet, already closed, or detached by TLS
        pass


class _Abandonable:
    def __init__(self, call: SiteCall):
        super().__init__()
        self._call = call

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(lambda *a, **kw: self._call._connection(http_class, *a, **kw), req, **kwargs)


class _HttpHandler(_Abandonable, urllib.request.HTTPHandler):
    pass


class _HttpsHandler(_Abandonable, urllib.request.HTTPSHandler):
    pass
