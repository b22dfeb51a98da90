"""The archive: the event schema and the event store. Imports nothing else of chat-archive."""
