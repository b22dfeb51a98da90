"""A TCP proxy in front of a real service, that a test can cut and restore.

Cutting closes every connection through it and refuses new ones until restored:
to the client this is the service going away (a PostgreSQL or XMPP server
restart) without disturbing anyone else using the service itself.

``batch_seconds``: what the service sends is delivered in bursts, everything
that arrived within that many seconds at once, as a loaded server or a slow
link does: the client then handles several stanzas in one read.
"""

from __future__ import annotations

import select
import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, batch_seconds: float = 0.0):
        self.target = (target_host, target_port)
        self.batch_seconds = batch_seconds
        self._open = threading.Event()
        self._open.set()
        self._closing = False
        self.hold = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._silenced: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()
        self.connections = 0  # accepted and forwarded, ever

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if not self._open.is_set():
            if not self.hold:
                client.close()  # refused while cut
                return
            self._open.wait()  # held, as by a server slow to answer, until restored
        if self._closing:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets |= {client, upstream}
            self.connections += 1
        for a, b, batch in ((client, upstream, 0.0), (upstream, client, self.batch_seconds)):
            threading.Thread(target=self._pipe, args=(a, b, batch), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, batch: float) -> None:
        try:
            while data := source.recv(65536):
                deadline = time.monotonic() + batch
                while (left := deadline - time.monotonic()) > 0 and select.select([source], [], [], left)[0]:
                    more = source.recv(65536)
                    if not more:
                        break
                    data += more
                if source not in self._silenced:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _close(self, *sockets: socket.socket) -> None:
        for s in sockets:
            with self._lock:
                self._sockets.discard(s)
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self, *, hold: bool = False) -> None:
        """Close every connection; refuse new ones until ``restore`` (``hold``: accept them, but
        connect them through only when restored)."""
        self.hold = hold
        self._open.clear()
        with self._lock:
            sockets = list(self._sockets)
        self._close(*sockets)

    def silence(self) -> None:
        """From now on, drop what either side of every open connection sends, and close none: to the client this
        is a link that died without a word (no FIN, no RST), which only an unanswered request reveals. New
        connections go through."""
        with self._lock:
            self._silenced |= self._sockets

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closing = True
        self.cut()
        self._open.set()  # releases held connections, which see ``_closing``
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
