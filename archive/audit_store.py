"""The event store's audit-trail part: the chained ``ContentRead`` records (``archive.audit``) kept
beside the log in the store's database (``archive.audit_tables``), appended by group commit and read
back by sequence number. ``EventStore`` inherits it, so callers append and read through the store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from eventsourcing.persistence import IntegrityError, OperationalError, PersistenceError

from . import chain
from .codec import from_msgpack, to_msgpack
from .errors import ConcurrencyError, StoreError
from .events import AUDIT_STREAM, ChainHead, ContentRead, Recorded, is_audit_trail
from .records import COPIED
from .store_errors import store_error
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
        page_size: int = 1000, trail: str = AUDIT_STREAM,
    ) -> Iterator[Recorded]:
        """Audit records after sequence number ``after`` up to ``through``, optionally in [start, end), oldest
        first; ``Recorded.position`` is the record's sequence number in the audit trail. ``trail``: the store's own,
        or one copied from another store (``archive.copied_trails``)."""
        for seq, state, _ in self._audit_rows(after, start, end, page_size, through, trail):
            yield Recorded(seq, from_msgpack(state))

    def audit_trails(self) -> list[str]:
        """The audit trails holding records: the store's own and those copied from the stores it came from."""
        return [head.stream for head in self._trail_heads()]

    def audit_link(self, trail: str, seq: int) -> bytes | None:
        """The stored link of record ``seq`` of an audit trail (its genesis for 0), None if it holds no such record."""
        if seq == 0:
            return chain.genesis(trail)
        return next((link for _, _, link in self._audit_rows(seq - 1, None, None, 1, seq, trail)), None)

    def copied_head(self, trail: str) -> tuple[int, bytes]:
        """The number and the link of a copied trail's last record; 0 and its genesis for none."""
        head = next((h for h in self._copied_trail_heads() if h.stream == trail), None)
        return (head.version, bytes.fromhex(head.link)) if head else (0, chain.genesis(trail))

    def check_copy(self, trail: str, link: bytes | None, source: str) -> tuple[int, bytes]:
        """Refuse to go on with the copied trail ``trail`` from ``source`` (a trail elsewhere, named for the message)
        unless ``link``, ``source``'s link at the copy's last record, is the copy's; ``copied_head``."""
        seq, held = self.copied_head(trail)
        if link != held:
            raise StoreError(f"{trail} holds another trail than {source}: they differ at record {seq}; a copied trail "
                             "goes on only with the trail it was copied from")
        return seq, held

    def copy_audit(self, trail: str, records: Iterable[Recorded], *, link: bytes | None = None,
                   page_size: int = 1000) -> int:
        """Append another store's audit records (each ``Recorded.position`` its sequence number there, in order, from
        the one after the copy's last) to the copied trail ``trail`` at their numbers, chained as there. ``link``:
        the source's link at the copy's last record (``check_copy``; None: the copy holds none). How many."""
        if not is_audit_trail(trail) or not trail.endswith(COPIED):
            raise StoreError(f"{trail} is not the name of a copied audit trail")
        seq, link = self.check_copy(trail, link or chain.genesis(trail), "the one copied")
        rows, new = [], 0
        for record in records:
            if record.position != seq + 1:
                raise StoreError(f"{trail}: record {record.position} does not follow record {seq}: a trail is copied "
                                 "whole, in order")
            state = to_msgpack(record.event)
            seq, link = record.position, chain.link(link, record.position, state)
            rows.append((trail, seq, record.event.occurred_at.timestamp(), state, link))
            if len(rows) == page_size:
                new += self._insert_copied(rows)
                rows = []
        return new + (self._insert_copied(rows) if rows else 0)

    def copied_checkpoints(self) -> dict[str, int]:
        """How far the log's checkpoints came with each copied trail (``archive.copied_trails``): copied trail ->
        the last log position a migration or a restore appended from the store it was copied from."""
        try:
            return self._recorder.copied_checkpoints()
        except PersistenceError as e:
            raise StoreError(f"could not read the copied checkpoints' marks: {e}") from e

    def _insert_copied(self, rows: list) -> int:
        try:
            self._recorder.insert_copied(rows)
        except PersistenceError as e:
            raise StoreError(f"could not copy audit records: {e}") from e
        return len(rows)

    def audit_last(self, trail: str = AUDIT_STREAM) -> int:
        """The sequence number of the trail's last record, 0 for none."""
        if trail != AUDIT_STREAM:
            return next((h.version for h in self._copied_trail_heads() if h.stream == trail), 0)
        try:
            head = self._recorder.audit_head()
        except PersistenceError as e:
            raise StoreError(f"could not read the audit trail: {e}") from e
        return head[0] if head else 0

    def _audit_rows(self, after: int, start, end, page_size: int, through: int = MAX_SEQ,
                    trail: str = AUDIT_STREAM) -> Iterator[tuple[int, bytes, bytes]]:
        t_from = start.timestamp() if start else float("-inf")
        t_to = end.timestamp() if end else float("inf")
        while True:
            try:
                if trail == AUDIT_STREAM:
                    page = self._recorder.select_audit(after, through, t_from, t_to, page_size)
                else:
                    page = self._recorder.select_copied(trail, after, through, t_from, t_to, page_size)
            except PersistenceError as e:
                raise StoreError(f"could not read the audit trail: {e}") from e
            yield from page
            if len(page) < page_size:
                return
            after = page[-1][0]

    def _trail_heads(self) -> list[ChainHead]:
        """The heads of the audit trails holding records, the store's own first."""
        last = self._recorder.audit_head()
        own = [ChainHead(AUDIT_STREAM, last[0], last[1].hex(), 1)] if last else []
        return own + self._copied_trail_heads()

    def _copied_trail_heads(self) -> list[ChainHead]:
        try:
            return [ChainHead(trail, seq, link.hex(), 1) for trail, seq, link in self._recorder.copied_heads()]
        except PersistenceError as e:
            raise store_error("could not read the copied audit trails", e) from e
