"""Read models that follow the event log.

- ``follower``: ``LogFollower`` and the ``Projection`` protocol (position, apply, commit).
- ``viewdb``: eventsourcing tracking recorders that own the view tables (SQLite or PostgreSQL).
- ``tables``: the base of the table projections; ``rebuild``: the rebuild protocol and driver;
  ``runner``: projection threads and their status.
- ``lines``: the transcript line every view shows; ``messages``: the one message model (pure) that
  decides what a message says after corrections, retractions and moderations, in every view.
- ``transcripts`` and ``presence``: ``logic`` (pure), ``view`` (the projection), ``queries`` (for the API).
- ``pointintime``: a room as it was at any time (read from the views); ``views``: all the query objects in one.
- ``search``: the tantivy search index.
"""
