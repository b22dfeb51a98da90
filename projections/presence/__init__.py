"""Presence timelines per room and occupant; see ``queries`` for the query interface."""
