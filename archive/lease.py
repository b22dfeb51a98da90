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
``refusal()`` (lost, or ``lapsed()``) before what another holder may be doing too,
and renews (the check that nobody took over) before a step that must not follow
another's work. Appends are made under the lease (``fence``): the store checks it
in the append's own transaction, where no pause can come between check and commit.
Renewals run in a thread of their own (``Renewer``), never queued behind other work.

A holder may leave a note for the next (``write_note``, ``last_note``): the
listener's rooms and heartbeat, which a listener taking over on another host
starts from and every host's API reads.
"""

from __future__ import annotations

import functools
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
from .lease_tables import POSTGRES_NOW, SQLITE_NOW, Fence
from .store_errors import store_error
from .store import EventStore

# The holder's clock for its lapse: CLOCK_BOOTTIME counts a suspend of the host (a laptop's, a VM's), which
# time.monotonic() does not (Linux), and during which the lease expires all the same. Bound here, once.
_elapsed = (functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME")
            else time.monotonic)


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
        # This host's clock since boot (``_elapsed``: neither a pause nor a suspend stops it) when the last claim that
        # succeeded began.
        self.renewed_at: float | None = None
        self.lost = threading.Event()  # set once a renewal found another holder: what the lease guards stops

    def acquire(self) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming who has it."""
        began = _elapsed()

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
        began = _elapsed()

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
        """Whether a ttl has passed since the last claim that succeeded began, by this host's clock since boot: the
        lease may have expired (this process paused, the host suspended, or the store out of reach) and another
        holder have it, so what it guards waits for the next renewal (``LeaseLost`` if there is another)."""
        return self.renewed_at is None or _elapsed() - self.renewed_at > self.ttl

    def refusal(self) -> str | None:
        """Why what the lease guards must not go on now (None: it may): the lease lost to another holder (however
        recently this one renewed it), or lapsed."""
        what = f"the store's {self.name} lease" if self.holder_is is None else f"the lease of this {self.holder_is}"
        if self.lost.is_set():
            return f"{what} was taken over by another holder: nothing more is done under it"
        if self.lapsed():
            return (f"{what} was not renewed for {self.ttl:g} s (this process paused, or the store out of reach): "
                    "another holder may have it now; nothing is done under it until it is renewed")
        return None

    @property
    def fence(self) -> Fence:
        """What an append under this lease names (``EventStore.append``): the store commits it only while this
        holder has the lease, unexpired by the database's clock, checked in the append's transaction."""
        return Fence(self.name, self.holder)

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
        """Seconds since the epoch by the database's clock (``archive.lease_tables``)."""
        if self.postgres:
            cursor.execute(f"SELECT {POSTGRES_NOW} AS now")
            return cursor.fetchone()["now"]
        cursor.execute(f"SELECT {SQLITE_NOW}")
        return cursor.fetchone()[0]


class Renewer:
    """Renews a lease every sixth of its ttl, in a thread of its own: a renewal queued behind other work (a shared
    executor's, busy reading rooms) could come after the lease expired, and another holder take over from one that
    runs well. A renewal that fails is reported to ``on_failure`` (None once one succeeds) and the holder goes on
    (the store may come back). ``on_lost(error)`` is called once (and ``lease.lost`` set) if another holder took the
    lease over; the renewals end there."""

    def __init__(self, lease: StoreLease, *, on_lost: Callable[[LeaseLost], None] | None = None,
                 on_failure: Callable[[str | None], None] | None = None):
        self.lease, self._on_lost, self._on_failure = lease, on_lost, on_failure
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{lease.name}-lease", daemon=True)

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.lease.ttl / 6):
            try:
                self.lease.renew()
            except LeaseLost as e:
                if self._on_lost is not None:
                    self._on_lost(e)
                return
            except StoreError as e:
                if self._on_failure is not None:
                    self._on_failure(f"cannot renew the store's {self.lease.name} lease: {e}")
            else:
                if self._on_failure is not None:
                    self._on_failure(None)


@contextmanager
def holding(lease: StoreLease, on_lost: Callable[[], None] | None = None) -> Iterator[StoreLease]:
    """Hold ``lease`` for the block (``LeaseHeld`` if another holder has it), renewed by a ``Renewer``. A renewal
    that fails is logged and the block goes on: what it does (a purge's deletion, say) is not safely stopped
    half-way, and the store may come back. ``on_lost`` is called once (and ``lease.lost`` set) if another holder took
    the lease over (it had expired: this process paused, or the store out of reach for a ttl), for a block that can
    stop at its next safe point."""
    lease.acquire()
    log = logging.getLogger(__name__)

    def lost(error: LeaseLost) -> None:
        log.error("%s", error)
        if on_lost is not None:
            on_lost()

    def failed(why: str | None) -> None:
        if why:
            log.warning("%s", why)

    renewer = Renewer(lease, on_lost=lost, on_failure=failed).start()
    try:
        yield lease
    finally:
        renewer.stop()
        try:
            lease.release()
        except StoreError as e:  # it expires by itself; the block's own error, if any, is the one to see
            log.warning("cannot release the store's %s lease: %s", lease.name, e)


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
