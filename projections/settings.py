"""Settings of the projections: transcript and presence views, search index."""

from typing import Annotated

import msgspec


class ProjectionSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[projections]`"""

    commit_interval: float = 60.0
    """Seconds between commits of the transcript and presence views."""
    url: str = ""
    """Where the views live; empty: beside the event store (`views.sqlite` next to a SQLite store, the same PostgreSQL database otherwise)."""


class IndexSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[index]`"""

    path: str = "data/index"
    """Directory of the tantivy search index."""
    commit_interval: float = 0.25
    """Seconds between index commits: a message is searchable within about this long."""
    writer_heap_mb: Annotated[int, msgspec.Meta(ge=15, le=4000)] = 256
    """Memory (MB, 15 to 4000) the index writer buffers before flushing a segment; more indexes faster during catch-up."""
