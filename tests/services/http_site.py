"""A real HTTP server on a free loopback port for tests that need another site (callbacks, embedding pages)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (path, headers) -> (status, content type, body)
Responder = Callable[[str, dict[str, str]], tuple[int, str, bytes]]


class HttpSite:
    """Answers every GET with ``respond(path, headers)``; ``origin`` is its base URL."""

    def __init__(self, respond: Responder):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, content_type, body = respond(self.path, dict(self.headers))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up first: a test holds an answer past the caller's deadline

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
