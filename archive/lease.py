"""A named lease in the store: one holder at a time (e.g. one XMPP listener per archive).

Two listeners on one store would each record the presence they see, at their own
receive times: the same fact twice. The listener therefore holds the store's
``listener`` lease while it runs, renewing it every few seconds. A second
listener is refused, naming the holder. A holder that stopped without releasing
it (kill -9, power loss) is taken over once its lease expires, or at once when it
ran on this host and its process no longer exists.
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
        self._recorder = store._recorder
        self._postgres = hasattr(self._recorder.datastore, "schema")
        schema = self._recorder.datastore.schema if self._postgres else None
        self._table = f'"{schema}".archive_leases' if schema else "archive_leases"
        self._mark = "%s" if self._postgres else "?"
        self.held = False

    def acquire(self) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming who has it."""
        now = time.time()

        def claim(cursor) -> str | None:
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
        self.held = True
        _HELD_HERE.add(self.holder)

    def renew(self) -> None:
        """Extend the lease; ``LeaseLost`` if someone took it over meanwhile."""

        def extend(cursor) -> str | None:
            current = self._current(cursor)
            if current and current[0] != self.holder:
                return current[0]
            if not self._write(cursor, time.time(), replacing=self.holder if current else None):
                return "another holder"
            return None

        holder = self._transaction(extend)
        if holder:
            self.held = False
            if self.holder_is is None:
                raise LeaseLost(f"the store's {self.name} lease was taken over by {holder}")
            raise LeaseLost(f"the lease of this {self.holder_is} was taken over by {holder}")

    def release(self) -> None:
        if self.held:
            self._transaction(lambda c: c.execute(
                f"DELETE FROM {self._table} WHERE name={self._mark} AND holder={self._mark}", (self.name, self.holder)
            ))  # fmt: skip
            self.held = False
            _HELD_HERE.discard(self.holder)

    # -- SQL --------------------------------------------------------------------

    def _transaction(self, work) -> Any:
        try:
            with self._recorder.datastore.transaction(commit=True) as cursor:
                if self._postgres:
                    schema = self._recorder.datastore.schema
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chat-archive lease {schema}",))
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table} "
                    "(name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)"
                )
                return work(cursor)
        except PersistenceError as e:
            raise store_error(f"cannot read or write the store's {self.name} lease", e) from e

    def _current(self, cursor) -> tuple[str, float] | None:
        cursor.execute(f"SELECT holder, expires FROM {self._table} WHERE name={self._mark}", (self.name,))
        row = cursor.fetchone()
        if row is None:
            return None
        return (row["holder"], row["expires"]) if self._postgres else (row[0], row[1])

    def _write(self, cursor, now: float, *, replacing: str | None) -> bool:
        """Hold the lease until ``now`` + ttl, if its holder is still ``replacing`` (None: nobody)."""
        m = self._mark
        if replacing is None:
            cursor.execute(
                f"INSERT INTO {self._table} VALUES ({m}, {m}, {m}) ON CONFLICT (name) DO NOTHING",
                (self.name, self.holder, now + self.ttl),
            )
        else:
            cursor.execute(
                f"UPDATE {self._table} SET holder={m}, expires={m} WHERE name={m} AND holder={m}",
                (self.holder, now + self.ttl, self.name, replacing),
            )
        return getattr(cursor, "sqlite_cursor", cursor).rowcount == 1


@contextmanager
def holding(lease: StoreLease, on_lost: Callable[[], None] | None = None) -> Iterator[StoreLease]:
    """Hold ``lease`` for the block (``LeaseHeld`` if another holder has it), renewed every sixth of its ttl
    by a thread. A renewal that fails is logged and the block goes on: what it does (a purge's deletion, say)
    is not safely stopped half-way, and the store may come back. ``on_lost`` is called once if another holder
    took the lease over (it had expired: this process paused, or the store out of reach for a ttl), for a
    block that can stop at its next safe point."""
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
