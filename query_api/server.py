"""Serving the app with waitress in a thread of the calling process, with a clean stop.

Why waitress: it is pure Python and multi-threaded in one process, with no
fork. That lets ``chat-archive up`` run the API in a thread beside the
listener and the projections (gunicorn wants to own the process, its signals
and its workers), lets every request share one event store, one token cache
and one open search index (forked workers would each hold their own), and
behaves the same on SQLite and PostgreSQL. The work per request is short
(views and index are precomputed), so threads are not a bottleneck here.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from archive.errors import ConfigError

from .app import MAX_BODY_BYTES, TOO_LARGE
from .context import EXTENSION
from .errors import error_document, http_error
from .streams import OUTPUT_BUFFER_BYTES

log = logging.getLogger(__name__)

LOOP_TIMEOUT = 0.2
MAX_THREADS = 1024
DRAIN_SECONDS = 5.0


class _JsonErrorTask(ErrorTask):
    """What waitress refuses before the app is called (a body over the limit, announced or chunked; a
    malformed request) is answered in the API's JSON error shape too, not waitress's text/plain page."""

    def execute(self):
        refusal = self.request.error
        message = TOO_LARGE if refusal.code == 413 else f"{refusal.reason}: {refusal.body}"
        body = json.dumps(error_document(http_error(refusal.code, message))).encode()
        self.status = f"{refusal.code} {refusal.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonErrorChannel(HTTPChannel):
    error_task_class = _JsonErrorTask


class ApiServer:
    """A running server: ``url`` to reach it, ``stop()`` to end it (or set the ``stop`` event)."""

    def __init__(self, app, host: str, port: int, *, threads: int, stop: threading.Event, stalled_seconds: float = 30.0,
                 connection_limit: int = 100):
        self._exports = app.extensions[EXTENSION].exports
        if not 1 <= threads <= MAX_THREADS:
            raise ConfigError(f"[api] threads must be between 1 and {MAX_THREADS}, not {threads}")
        try:
            # (waitress refuses a body of max_request_body_size bytes or more; the app, one of more than
            # MAX_BODY_BYTES: one rule.)
            self._server = create_server(
                app, host=host, port=port, threads=threads, ident="chat-archive",
                max_request_body_size=MAX_BODY_BYTES + 1, outbuf_high_watermark=OUTPUT_BUFFER_BYTES,
                connection_limit=connection_limit,
                # A connection stays read while its request is answered, so that a client's close is seen when it
                # happens (``waitress.client_disconnected``): a follow stream whose client went away ends then, not
                # at its second heartbeat after (its stream slot held meanwhile: ``query_api.streams``).
                channel_request_lookahead=1,
            )  # fmt: skip
            self._server.channel_class = _JsonErrorChannel  # (create_server takes no channel; one socket here)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e}") from e
        self.host = self._server.effective_host
        self.port = self._server.effective_port
        self.stop_event = stop
        self.stalled_seconds = stalled_seconds
        self._receiving: dict = {}  # channel -> (the request it is receiving, when first seen)
        self._thread = threading.Thread(target=self._run, name=f"api-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        server_map = self._server._map
        checked = time.monotonic()
        while not self.stop_event.is_set():
            wasyncore.loop(timeout=LOOP_TIMEOUT, map=server_map, use_poll=True, count=1)
            if time.monotonic() - checked >= 1:
                checked = time.monotonic()
                self._drop_stalled_clients()
        # The stop event also ends open follow streams: serve I/O while requests finish.
        dispatcher = self._server.task_dispatcher
        deadline = time.monotonic() + DRAIN_SECONDS
        while dispatcher.active_count and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=server_map, use_poll=True, count=1)
        dispatcher.shutdown(timeout=1)
        wasyncore.close_all(server_map)
        # The server's end is what its owner waits for before closing the store its export jobs read.
        self._exports.close()

    def _drop_stalled_clients(self) -> None:
        """Disconnect the clients that stall (``stalled``): waitress waits for them as long as their connections
        last (an idle one two minutes, one sending a byte a minute for ever), and past ``[api] connection_limit``
        open connections it accepts no more. One taking nothing of a pending answer also frees the thread writing
        it (blocked once waitress buffers ``OUTPUT_BUFFER_BYTES``) and gives its stream slot back."""
        now = time.time()
        receiving = {}
        for channel in list(self._server.active_channels.values()):
            request = channel.request
            if request is not None:
                seen = self._receiving.get(channel)
                receiving[channel] = seen if seen is not None and seen[0] is request else (request, now)
            why = stalled(channel, receiving.get(channel, (None, now))[1], now, self.stalled_seconds)
            if why is not None:
                if why is not IDLE:  # (an idle connection closed is routine: one a client keeps alive but no longer uses)
                    log.warning("disconnecting a client that %s", why)
                channel.handle_close()
                receiving.pop(channel, None)
        self._receiving = receiving

    def stop(self, timeout: float = DRAIN_SECONDS + 5) -> None:
        self.stop_event.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()


IDLE = "sent nothing"


def stalled(channel, receiving_since: float, now: float, seconds: float) -> str | None:
    """What the client of a waitress ``channel`` failed to do within ``seconds`` (so it is disconnected), or None:
    take any of a pending answer; send a request whole (counted from when its first bytes were seen: waitress
    reads a whole request, body included, before a thread runs it); send anything at all on an idle connection."""
    if channel.total_outbufs_len > 0:
        return f"read nothing for {seconds:.0f} s" if channel.last_activity < now - seconds else None
    if channel.requests:  # being answered
        return None
    if channel.request is not None:
        return f"took more than {seconds:.0f} s to send a request" if receiving_since < now - seconds else None
    return IDLE if channel.last_activity < now - seconds else None


def start_server(
    app, host: str, port: int, *, threads: int, stop: threading.Event, stalled_seconds: float = 30.0,
    connection_limit: int = 100,
) -> ApiServer:
    """Bind ``host:port`` (port 0: any free port) and serve ``app`` until ``stop`` is set."""
    # waitress warns for every request that waits for a free thread: under load, one line per request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return ApiServer(app, host, port, threads=threads, stop=stop, stalled_seconds=stalled_seconds,
                     connection_limit=connection_limit)
