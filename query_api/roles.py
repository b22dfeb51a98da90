"""Who may do what: the roles a token carries and what each role may ask for.

A role grants capabilities (kinds of endpoint); which rooms a caller may see is
decided separately (``query_api.access``), per caller.
"""

from __future__ import annotations

import enum


class Role(str, enum.Enum):
    COMPLIANCE = "compliance"  # every room, originals of edits and retractions, export, real JIDs
    ANALYST = "analyst"  # replay, state and presence of the rooms granted
    SITE = "site"  # the collaboration site, acting for one of its users
    ANONYMOUS = "anonymous"  # no token, public rooms only, when configured (never stored)


class Capability(str, enum.Enum):
    ROOMS = "rooms"
    SEARCH = "search"
    TRANSCRIPT = "transcript"
    PRESENCE = "presence"
    REPLAY = "replay"
    STATE = "state"
    EXPORT = "export"
    AUDIT = "audit"  # the audit trail, legal holds and purges


# What a capability lets a caller do, in the words of a refusal ("the site role may not replay events"): the
# capability's name is ours, not the caller's. An endpoint may say more exactly (``context.caller``'s ``doing``).
DOING: dict[Capability, str] = {
    Capability.ROOMS: "list rooms",
    Capability.SEARCH: "search messages",
    Capability.TRANSCRIPT: "read transcripts",
    Capability.PRESENCE: "read presence",
    Capability.REPLAY: "replay events",
    Capability.STATE: "read a room's state at a moment",
    Capability.EXPORT: "export rooms",
    Capability.AUDIT: "read the audit trail or use legal holds",
}

ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.COMPLIANCE: frozenset(Capability),
    Role.ANALYST: frozenset({Capability.ROOMS, Capability.REPLAY, Capability.STATE, Capability.PRESENCE}),
    Role.SITE: frozenset({Capability.ROOMS, Capability.TRANSCRIPT, Capability.PRESENCE, Capability.SEARCH}),
    Role.ANONYMOUS: frozenset({Capability.ROOMS, Capability.TRANSCRIPT, Capability.PRESENCE, Capability.SEARCH}),
}

TOKEN_ROLES = (Role.COMPLIANCE, Role.ANALYST, Role.SITE)
