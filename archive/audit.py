"""The audit trail: who read what, as ``ContentRead`` records in their own chained stream.

Every process that serves archived content (the API, the web pages, the CLI)
appends one record per read with ``record_read``; only compliance reads them back
(``read_audit``). The trail lives beside the event log, not in it (reads must not
become events every projection steps over), and is chained like a stream
(``archive.chain``), so ``verify --integrity`` shows whether a record was removed
or changed, and checkpoints carry its head.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime

from .audit_store import MAX_SEQ
from .events import AUDIT_STREAM, ContentRead, Recorded
from .store import EventStore
from .times import utcnow

MAX_QUERY = 1000  # characters of a query kept in a record
SCAN = 10_000  # records one page reads at most, whatever its filter finds among them


def record_read(
    store: EventStore,
    *,
    via: str,
    endpoint: str,
    token_id: str | None = None,
    role: str | None = None,
    user: str | None = None,
    rooms: tuple[str, ...] = (),
    query: str | None = None,
    range_from: datetime | None = None,
    range_to: datetime | None = None,
    results: int | None = None,
    status: int | None = None,
) -> ContentRead:
    """Append one audit record (raises ``StoreError`` if it cannot be written: no unrecorded read)."""
    now = utcnow()
    record = ContentRead(
        room=AUDIT_STREAM,
        occurred_at=now,
        recorded_at=now,
        request_id=secrets.token_hex(8),
        via=via,
        endpoint=endpoint,
        token_id=token_id,
        role=role,
        user=user,
        rooms=rooms,
        query=query[:MAX_QUERY] if query else None,
        range_from=range_from,
        range_to=range_to,
        results=results,
        status=status,
    )
    store.append_audit(record)
    return record


def trail_endpoint(endpoint: str, trail: str) -> str:
    """What a record of a read of an audit trail names as its endpoint: the store's own trail is the default, a copied
    one (``archive.copied_trails``; or one asked for and refused) is named after it, however it was asked for."""
    return endpoint if trail == AUDIT_STREAM else f"{endpoint} trail={trail}"


def matches_who(record: ContentRead, who: str) -> bool:
    """``who`` names the token id, the site user or the role of the record."""
    return who in (record.token_id, record.user, record.role)


def read_audit(
    store: EventStore,
    *,
    who: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    through: int = MAX_SEQ,
    trail: str = AUDIT_STREAM,
) -> Iterator[Recorded]:
    """Audit records, oldest first, optionally of one caller, in [since, until), after sequence number ``after``
    up to ``through``; of the store's own trail, or of one copied from another store (``archive.copied_trails``)."""
    for recorded in store.read_audit(after=after, through=through, start=since, end=until, trail=trail):
        if who is None or matches_who(recorded.event, who):
            yield recorded


def audit_page(
    store: EventStore,
    *,
    limit: int,
    who: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    trail: str = AUDIT_STREAM,
) -> tuple[list[Recorded], int | None]:
    """Up to ``limit`` records of ``read_audit``, and the sequence number the next page goes on after (None: the
    trail holds no more). A page reads the records after ``after`` up to ``SCAN`` of them: a filter that matches
    few records (or none) gives a page with fewer than ``limit``, even none, and the sequence number up to which it
    looked, so that no request reads the whole trail (it grows with every request)."""
    through = min(after + SCAN, MAX_SEQ)
    found: list[Recorded] = []
    for recorded in read_audit(store, who=who, since=since, until=until, after=after, through=through, trail=trail):
        if len(found) == limit:
            return found, found[-1].position
        found.append(recorded)
    return found, (through if store.audit_last(trail) > through else None)
