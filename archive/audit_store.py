"""The event store's audit-trail part: the chained ``ContentRead`` records (``archive.audit``) kept
beside the log in the store's database (``archive.audit_tables``), appended by group commit and read
back by sequence number. ``EventStore`` inherits it, so callers append and read through the store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import datetime

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError

from .codec import from_msgpack, to_msgpack
from .errors import ConcurrencyError, StoreError
from .events import AUDIT_STREAM, ChainHead, ContentRead, Recorded
from .group_commit import GroupCommit

MAX_ATTEMPTS = 20  # conflicts with other writers before an append gives up (events and audit records)
MAX_SEQ = 2**63 - 1  # the largest sequence number the databases' integer columns hold


class AuditStore:
    """The audit trail of the store over ``self._recorder`` (an archive recorder, with its audit table)."""

    def __init__(self, recorder):
        self._recorder = recorder
        self._audit_queue = GroupCommit(self._insert_audit)

    def append_audit(self, record: ContentRead) -> None:
        """Append an audit record to the audit trail (not the event log); returns once it is committed.

        Group commit: records of concurrent callers (a busy API's request threads) are written
        together, one transaction for all that arrived while the previous one committed."""
        self._audit_queue.write(record)

    def _insert_audit(self, records: list[ContentRead]) -> None:
        rows = [(to_msgpack(r), r.occurred_at.timestamp()) for r in records]
        for attempt in range(MAX_ATTEMPTS):
            try:
                return self._recorder.insert_audit(rows)
            except (IntegrityError, OperationalError) as e:
                if attempt == MAX_ATTEMPTS - 1:
                    raise ConcurrencyError(f"gave up appending audit records after {MAX_ATTEMPTS} conflicts: {e}") from e
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
            except PersistenceError as e:
                raise StoreError(f"could not append audit records: {e}") from e
        raise AssertionError("unreachable")

    def read_audit(
        self, *, after: int = 0, through: int = MAX_SEQ, start: datetime | None = None, end: datetime | None = None,
        page_size: int = 1000,
    ) -> Iterator[Recorded]:
        """Audit records after sequence number ``after`` up to ``through``, optionally in [start, end), oldest
        first; ``Recorded.position`` is the record's sequence number in the audit trail."""
        for seq, state, _ in self._audit_rows(after, start, end, page_size, through):
            yield Recorded(seq, from_msgpack(state))

    def audit_last(self) -> int:
        """The sequence number of the trail's last record, 0 for none."""
        try:
            head = self._recorder.audit_head()
        except PersistenceError as e:
            raise StoreError(f"could not read the audit trail: {e}") from e
        return head[0] if head else 0

    def _audit_rows(self, after: int, start, end, page_size: int, through: int = MAX_SEQ) -> Iterator[tuple[int, bytes, bytes]]:
        t_from = start.timestamp() if start else float("-inf")
        t_to = end.timestamp() if end else float("inf")
        while True:
            try:
                page = self._recorder.select_audit(after, through, t_from, t_to, page_size)
            except PersistenceError as e:
                raise StoreError(f"could not read the audit trail: {e}") from e
            yield from page
            if len(page) < page_size:
                return
            after = page[-1][0]

    def _audit_head(self) -> ChainHead | None:
        last = self._recorder.audit_head()
        return ChainHead(AUDIT_STREAM, last[0], last[1].hex(), 1) if last else None
