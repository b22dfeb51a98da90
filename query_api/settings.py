"""Settings of the query API and web pages."""

from typing import Annotated

import msgspec

from .tokens import grant_problem

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400)]
CacheSeconds = Annotated[float, msgspec.Meta(ge=0, le=86400)]


class ApiSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[api]`"""

    host: str = "127.0.0.1"
    """Address the HTTP server binds to."""
    port: Port = 8080
    """Port the HTTP server listens on."""
    threads: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 16
    """Worker threads of the HTTP server (waitress); each open `follow` stream holds one."""
    active_requests: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 0
    """Requests that run at once in one server process (streams being written do not count); the rest wait for a turn. 0: one per core the process has (`serve --workers N` shares the host's cores among N). More only contend for Python's interpreter lock."""
    anonymous_read: bool = False
    """Let callers without a token read transcripts, presence and search of public rooms."""
    public_rooms: tuple[str, ...] = ()
    """Rooms anonymous callers may read when `anonymous_read` is on: JIDs, `*@service`, or `glob:PATTERN` (README: granted rooms)."""
    user_header: str = "X-Chat-Archive-User"
    """Request header in which a `site` token names the site user it acts for."""
    permission_url: str = ""
    """URL the site is asked (`GET ?user=U&room=R1&room=R2...`, answer `{"allowed": [rooms]}`) which of the rooms a user may see; empty: the site token's static room list."""
    permission_token: str = ""
    """Bearer token sent to `permission_url`, so the site can tell the archive's calls apart."""
    permission_timeout: Seconds = 2.0
    """Seconds to wait for the permission callback; no answer in time means not allowed."""
    permission_cache_seconds: CacheSeconds = 30.0
    """Seconds a permission answer is reused before the site is asked again."""
    search_timeout: Seconds = 10.0
    """Seconds a request waits for a search (API, search page); longer: 503 `search_timeout`."""
    token_cache_seconds: CacheSeconds = 5.0
    """Seconds a token lookup (or a session's sign-out check) is reused: a revoked token, or a session signed out in another process, stops working within this long."""
    metrics_public: bool = False
    """Serve `/metrics` without a token (for a scraper on a private network)."""
    follow_heartbeat: Seconds = 15.0
    """Seconds between empty keep-alive lines on an idle `follow` stream (how a closed client is noticed)."""
    streams_per_client: Positive = 4
    """Streamed answers (replay, export, `follow`) one client (a token and site user, else an address) may have open at once; more: 429."""
    stalled_client_seconds: Seconds = 30.0
    """A client that reads nothing of a pending answer for this long, sends nothing of its request for this long, or takes longer than this to send a request's headers (`up`, `serve`: its whole request) is disconnected (its connection and server thread freed)."""
    connection_limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100
    """Client connections one server process holds open at once (each of `serve --workers`' processes its own); more wait to be accepted."""
    max_running_exports: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 4
    """Export jobs (`POST /api/v1/exports`, the export page) running at once, counted in `export_dir` (so across every process sharing it); more: 429 `too_many_exports`."""
    export_dir: str = "data/exports"
    """Directory where export jobs write their bundles and status (shared by every server process of one archive)."""
    export_keep_days: Annotated[float, msgspec.Meta(ge=0, le=36500)] = 7.0
    """Days a finished export job (done or failed) is kept after it finished; then its bundle is deleted and it answers 410 `expired` for as long again. 0 keeps them forever."""
    max_page_size: Positive = 1000
    """Largest `limit` a paged list accepts."""
    time_zone: str = "UTC"
    """Time zone (IANA name, e.g. `Europe/Berlin`) of the times in the transcript's `text` and `html` formats; a request's `tz` overrides it. JSON and days stay UTC."""
    signing_keys: tuple[str, ...] = ()
    """Secrets (32+ characters) that sign cursors, tickets and sessions, the first signing, all verifying; empty: keys kept in the store (`chat-archive keys`)."""
    widget_frame_ancestors: tuple[str, ...] = ("'self'",)
    """Sites allowed to embed `/widget/{room}` in a frame (CSP `frame-ancestors` sources, e.g. `https://collab.example.org`); `*`: any site."""
    widget_websocket_url: str = ""
    """The XMPP server's WebSocket endpoint (RFC 7395, e.g. Prosody's `wss://xmpp.example.org:5281/xmpp-websocket`) the widget's Join connects to from the browser; empty: no Join button (the `xmpp:` link only)."""

    def __post_init__(self):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"[api] time_zone {self.time_zone!r} is not a time zone: use an IANA name such as Europe/Berlin") from None
        if self.widget_websocket_url and not self.widget_websocket_url.startswith(("ws://", "wss://")):
            raise ValueError("[api] widget_websocket_url must be a ws:// or wss:// URL")
        for grant in self.public_rooms:
            if problem := grant_problem(grant):
                raise ValueError(f"[api] public_rooms: {grant!r} can match no room: {problem}")
