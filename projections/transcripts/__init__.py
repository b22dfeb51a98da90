"""Per-room transcripts: messages in order with occupant lines; see ``queries`` for the query interface."""
