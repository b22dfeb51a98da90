"""A named lease in the store: one holder at a time (e.g. one XMPP listener per archive).

Two listeners on one store would each record the presence they see, at their own
receive times: the same fact twice. The listener therefore holds the store's
``listener`` lease while it runs, renewing it every few seconds. A second
listener is refused, naming the holder. A holder that stopped without releasing
it (kill -9, power loss) is taken over once its lease expires, or at once when it
ran on this host and its process no longer exists. Expiry is set and judged by the
database's clock: holders on several hosts have clocks of their own.

Expiry alone does not stop a holder that paused past it (SIGSTOP, a VM frozen): it
learns so at its next renewal (``LeaseLost``, ``lost``), and until then checks
``lapsed()`` before what another holder may be doing too, and renews (the check
that nobody took over) before a step that must not follow another's work.

A holder may leave a note for the next (``write_note``, ``last_note``): the
listener's rooms and heartbeat, which a listener taking over on another host
starts from and every host's API reads.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import PersistenceError

from .errors import StoreError
from .store_errors import store_error
from .store import EventStore


# The holders of the leases this process has taken and not released.
_HELD_HERE: set[str] = set()


class LeaseHeld(StoreError):
    """Another holder has the lease."""


class LeaseLost(StoreError):
    """The lease was taken over (it had expired while this holder could not renew it)."""


class StoreLease:
    def __init__(self, store: EventStore, name: str, *, ttl: float = 30.0, holder_is: str | None = None):
        """``holder_is``: what a holder is, for the refusal and the loss, where the name is no word for a reader
        (the views' lease is named by their database's identity, a SQLite file's device and inode)."""
        self.name, self.ttl, self.holder_is = name, ttl, holder_is
        self.holder = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"
        self._tables = _Tables(store)
        self.held = False
        # This process's monotonic clock (a pause does not stop it) when the last claim that succeeded began.
        self.renewed_at: float | None = None
        self.lost = threading.Event()  # set once a renewal found another holder: what the lease guards stops

    def acquire(self) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming who has it."""
        began = time.monotonic()

        def claim(cursor) -> str | None:
            now = self._tables.now(cursor)
            current = self._current(cursor)
            if current and current[0] != self.holder and current[1] > now and _alive(current[0]):
                return current[0]
            if not self._write(cursor, now, replacing=current[0] if current else None):
                return "another holder that took it at the same moment"
            return None

        holder = self._transaction(claim)
        if holder:
            if self.holder_is is None:
                raise LeaseHeld(f"the store's {self.name} lease is held by {holder} (another {self.name} runs on this store)")
            raise LeaseHeld(f"another {self.holder_is} runs on this store: {holder}")
        self.held, self.renewed_at = True, began
        _HELD_HERE.add(self.holder)

    def renew(self) -> None:
        """Extend the lease; ``LeaseLost`` if someone took it over meanwhile. Also the check, before a step that must
        not follow another holder's work (a rebuild's swap), that no other has had the lease: it is ours a ttl more."""
        began = time.monotonic()

        def extend(cursor) -> str | None:
            current = self._current(cursor)
            if current is None:  # only its holder deletes it: another took it over meanwhile, and released it since
                return "another holder, which has released it since"
            if current[0] != self.holder:
                return current[0]
            if not self._write(cursor, self._tables.now(cursor), replacing=self.holder):
                return "another holder"
            return None

        holder = self._transaction(extend)
        if holder:
            self.held = False
            self.lost.set()
            if self.holder_is is None:
                raise LeaseLost(f"the store's {self.name} lease was taken over by {holder}")
            raise LeaseLost(f"the lease of this {self.holder_is} was taken over by {holder}")
        self.renewed_at = began

    def lapsed(self) -> bool:
        """Whether a ttl has passed since the last claim that succeeded began, by this process's monotonic clock:
        the lease may have expired (this process paused, or the store out of reach) and another holder have it, so
        what it guards waits for the next renewal (``LeaseLost`` if there is another)."""
        return self.renewed_at is None or time.monotonic() - self.renewed_at > self.ttl

    def write_note(self, note: bytes) -> bool:
        """Leave ``note`` for the lease's next holder (``last_note``), if this holder still has the lease: one that
        lost it must not overwrite its successor's. False if it did not."""
        m = self._tables.mark

        def write(cursor) -> bool:
            current = self._current(cursor)
            if current is None or current[0] != self.holder:
                return False
            cursor.execute(
                f"INSERT INTO {self._tables.notes} VALUES ({m}, {m}, {m}) "
                "ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, note=excluded.note",
                (self.name, self.holder, note),
            )
            return True

        return self._transaction(write)

    def release(self) -> None:
        if self.held:
            self._transaction(lambda c: c.execute(
                f"DELETE FROM {self._tables.leases} WHERE name={self._tables.mark} AND holder={self._tables.mark}",
                (self.name, self.holder),
            ))  # fmt: skip
            self.held = False
            _HELD_HERE.discard(self.holder)

    # -- SQL --------------------------------------------------------------------

    def _transaction(self, work) -> Any:
        return self._tables.transaction(work, f"the store's {self.name} lease")

    def _current(self, cursor) -> tuple[str, float] | None:
        cursor.execute(f"SELECT holder, expires FROM {self._tables.leases} WHERE name={self._tables.mark}", (self.name,))
        row = cursor.fetchone()
        if row is None:
            return None
        return (row["holder"], row["expires"]) if self._tables.postgres else (row[0], row[1])

    def _write(self, cursor, now: float, *, replacing: str | None) -> bool:
        """Hold the lease until ``now`` + ttl, if its holder is still ``replacing`` (None: nobody)."""
        m, table = self._tables.mark, self._tables.leases
        if replacing is None:
            cursor.execute(
                f"INSERT INTO {table} VALUES ({m}, {m}, {m}) ON CONFLICT (name) DO NOTHING",
                (self.name, self.holder, now + self.ttl),
            )
        else:
            cursor.execute(
                f"UPDATE {table} SET holder={m}, expires={m} WHERE name={m} AND holder={m}",
                (self.holder, now + self.ttl, self.name, replacing),
            )
        return getattr(cursor, "sqlite_cursor", cursor).rowcount == 1


def last_note(store: EventStore, name: str) -> tuple[str, bytes] | None:
    """The note the last holder of the lease ``name`` to write one left (``StoreLease.write_note``), with that
    holder; None if none did."""
    tables = _Tables(store)

    def read(cursor) -> tuple[str, bytes] | None:
        cursor.execute(f"SELECT holder, note FROM {tables.notes} WHERE name={tables.mark}", (name,))
        row = cursor.fetchone()
        if row is None:
            return None
        return (row["holder"], bytes(row["note"])) if tables.postgres else (row[0], bytes(row[1]))

    return tables.transaction(read, f"the note of the store's {name} lease", lock=False)


class _Tables:
    """The lease tables of a store (``archive.lease_tables``), and transactions on them."""

    def __init__(self, store: EventStore):
        self.datastore = store._recorder.datastore
        self.postgres = hasattr(self.datastore, "schema")
        prefix = f'"{self.datastore.schema}".' if self.postgres else ""
        self.leases, self.notes = f"{prefix}archive_leases", f"{prefix}archive_lease_notes"
        self.mark = "%s" if self.postgres else "?"

    def transaction(self, work, what: str, *, lock: bool = True) -> Any:
        """``work(cursor)`` in a transaction; unless not ``lock``, one at a time: on PostgreSQL under the schema's
        lease lock, on SQLite with the write lock taken before anything is read (two processes claiming at once
        would otherwise both read, and the second fail to write from what it read)."""
        try:
            with self.datastore.transaction(commit=True) as cursor:
                if self.postgres and lock:
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chat-archive lease {self.datastore.schema}",))
                elif lock:
                    cursor.execute(f"DELETE FROM {self.leases} WHERE 0")
                return work(cursor)
        except PersistenceError as e:
            raise store_error(f"cannot read or write {what}", e) from e

    def now(self, cursor) -> float:
        """Seconds since the epoch by the database's clock, which sets and judges every holder's expiry whatever
        host it runs on: hosts' clocks differ (a SQLite store is on one host, and SQLite's clock is that host's)."""
        if self.postgres:
            cursor.execute("SELECT extract(epoch FROM clock_timestamp())::double precision AS now")
            return cursor.fetchone()["now"]
        cursor.execute("SELECT (julianday('now') - 2440587.5) * 86400.0")
        return cursor.fetchone()[0]


@contextmanager
def holding(lease: StoreLease, on_lost: Callable[[], None] | None = None) -> Iterator[StoreLease]:
    """Hold ``lease`` for the block (``LeaseHeld`` if another holder has it), renewed every sixth of its ttl
    by a thread. A renewal that fails is logged and the block goes on: what it does (a purge's deletion, say)
    is not safely stopped half-way, and the store may come back. ``on_lost`` is called once (and ``lease.lost``
    set) if another holder took the lease over (it had expired: this process paused, or the store out of reach
    for a ttl), for a block that can stop at its next safe point."""
    lease.acquire()
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease.ttl / 6):
            try:
                lease.renew()
            except LeaseLost as e:
                logging.getLogger(__name__).error("%s", e)
                if on_lost is not None:
                    on_lost()
                return
            except StoreError as e:
                logging.getLogger(__name__).warning("cannot renew the store's %s lease: %s", lease.name, e)

    renewer = threading.Thread(target=renew, name=f"{lease.name}-lease", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        done.set()
        renewer.join()
        try:
            lease.release()
        except StoreError as e:  # it expires by itself; the block's own error, if any, is the one to see
            logging.getLogger(__name__).warning("cannot release the store's %s lease: %s", lease.name, e)


def _alive(holder: str) -> bool:
    """Whether the holder may still run: False only for a process of this host that no longer exists."""
    host, _, rest = holder.partition(" pid ")
    if host != socket.gethostname():
        return True
    try:
        pid = int(rest.split()[0])
    except (ValueError, IndexError):
        return True
    if pid == os.getpid():
        # Not a lease this process holds: a former process of the same host name and id (a container
        # restarted, its process 1 again), not one that still runs.
        return holder in _HELD_HERE
    return process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process of this host with that id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
