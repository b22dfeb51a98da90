"""Settings of the XMPP listener."""

from typing import Annotated

import msgspec


class XmppSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[xmpp]`"""

    jid: str = ""
    """The listener's account, e.g. `archiver@example.org`. Empty: no listener (or demo traffic with `up --demo`)."""
    password: str = ""
    """The listener account's password."""
    host: str = ""
    """Server address to connect to; empty: the JID's domain."""
    port: int = 5222
    """Client-to-server port."""
    tls: bool = True
    """Require TLS (STARTTLS) on the connection."""
    ca_certs: str = ""
    """CA bundle (PEM) to verify the server's certificate; empty: the system's."""
    nick: str = "archive"
    """Nickname the listener uses in rooms."""
    muc_services: tuple[str, ...] = ()
    """MUC services whose rooms are discovered and joined, e.g. `conference.example.org`."""
    include: tuple[str, ...] = ("*",)
    """Room JID patterns (shell globs) to archive."""
    exclude: tuple[str, ...] = ()
    """Room JID patterns never to archive (wins over `include`)."""
    rooms: tuple[str, ...] = ()
    """Rooms to join even if service discovery does not list them (hidden rooms)."""
    admin_discovery: bool = False
    """Opt-in: also find hidden rooms through the server's admin interface where this account has that right (Prosody: the first form of the "Destroy Rooms" admin command, read and cancelled, never completed)."""
    poll_interval: float = 5.0
    """Seconds between service-discovery polls for new rooms."""
    import_archive: bool = True
    """On the first join of a room that serves MAM, import its whole archive."""
    status_file: str = "data/listener-status.json"
    """Where the listener writes its status (rooms joined and refused, connection, last event) for `chat-archive status`."""
    retry_refused_after: float = 300.0
    """Seconds before the listener tries again to enter a room that refused it (or that it was removed from)."""
    lease_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    """Seconds the listener's lease on the store lasts unless renewed (every sixth of it): a listener on another host takes over this long after the last renewal, and one that went this long without renewing (paused, store unreachable) stores nothing until it renews."""
    keepalive_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    """Seconds between the listener's pings to the server, which find a connection that died without a word."""
    keepalive_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 15.0
    """Seconds a ping may go unanswered before the connection is taken for dead and made again (time with reading paused, when the store is behind, does not count)."""
