"""Settings of the query API and web pages."""

import msgspec


class ApiSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[api]`"""

    host: str = "127.0.0.1"
    """Address the HTTP server binds to."""
    port: int = 8080
    """Port the HTTP server listens on."""
