"""The views as one object: what ``chat_archive.bootstrap.open_views`` returns.

``Views(url, store)``:

- ``views.transcripts``: ``transcripts.queries.Transcripts`` (page, day, context, line);
- ``views.presence``: ``presence.queries.Presence`` (occupants_at, stays, occupancy, gaps);
- ``views.room_state_at(room, at, **options)``: ``pointintime.RoomState``
  (needs the event store);
- ``views.projections()``: fresh projection instances for a runner or a rebuild;
- ``views.close()``.

Queries read committed data only, i.e. up to the last commit of each projection.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from archive.errors import ConfigError
from archive.store import EventStore

from .pointintime import RoomState, room_state_at
from .presence.queries import Presence
from .presence.view import PresenceProjection
from .tables import TableProjection
from .transcripts.queries import Transcripts
from .transcripts.view import TranscriptProjection
from .viewdb import open_view_recorder

PROJECTION_CLASSES: dict[str, type[TableProjection]] = {
    TranscriptProjection.name: TranscriptProjection,
    PresenceProjection.name: PresenceProjection,
}


class Views:
    def __init__(self, url: str, store: EventStore | None = None):
        self.url = url
        self.store = store
        self.recorder, self._close = open_view_recorder(url)
        for cls in PROJECTION_CLASSES.values():
            if not self.recorder.generations(cls.name)[0]:
                self.recorder.create_generation(cls.name, cls.ddl + cls.query_ddl, live=True)
        self.transcripts = Transcripts(self.recorder)
        self.presence = Presence(self.recorder)

    def projections(self, names: list[str] | None = None) -> list[TableProjection]:
        return [PROJECTION_CLASSES[name](self.recorder) for name in (names or list(PROJECTION_CLASSES))]

    def room_state_at(self, room: str, at: datetime, **options) -> RoomState:
        if self.store is None:
            raise ConfigError("room_state_at needs the event store: open the views with one")
        gaps = self.presence.gaps(room, start=at, end=at + timedelta(microseconds=1))
        return room_state_at(self.store, room, at, gaps=gaps, **options)

    def close(self) -> None:
        self._close()
        self.recorder.datastore.close()

    def __enter__(self) -> Views:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
