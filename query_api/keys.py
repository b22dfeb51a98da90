"""The server's signing keys: kept in the store (or given in the config), rotated without downtime.

Every process of one archive reads the same keys, so anything one process
signs (a cursor, a widget ticket, a sign-in session) every other process can
verify. The newest key signs; every key still listed verifies. Rotation is
``chat-archive keys rotate`` (a new key signs from now on, the old ones keep
verifying what they signed) and later ``chat-archive keys retire ID`` (what the
old key signed stops being accepted).

A process re-reads the keys every ``RELOAD_SECONDS``, and at once (at most
once a second) when it is shown a key id it does not know, so a token signed
by a process that already uses a new key verifies everywhere at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from archive.errors import ConfigError, NotFoundError
from archive.times import format_time, utcnow

from .tables import Table
from .tokens import _Database

RELOAD_SECONDS = 60.0
MISS_RELOAD_SECONDS = 1.0
MIN_SECRET_CHARS = 32
TABLE = Table("signing_keys", (("id", "TEXT PRIMARY KEY"), ("secret", "TEXT NOT NULL"), ("created_at", "TEXT NOT NULL")))


@dataclass(frozen=True)
class SigningKey:
    id: str
    secret: bytes
    created_at: str = ""


def key_from_secret(secret: str) -> SigningKey:
    """A key given in the config: its id is derived from it, so every process names it alike."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"[api] signing_keys: each key needs at least {MIN_SECRET_CHARS} characters")
    return SigningKey(hashlib.sha256(secret.encode()).hexdigest()[:8], secret.encode())


class KeyStore:
    """Signing keys in the event store's database (table ``signing_keys``), newest last."""

    def __init__(self, database: _Database):
        self._db = database
        TABLE.create(self._db)
        self._db.close()  # reopened when the keys are read: a process holds no connection for them

    def keys(self) -> list[SigningKey]:
        """Every key, oldest first; the first caller of an archive creates its first key."""
        keys = self._read()
        if not keys:
            # Two processes starting at once may both insert: both keys are valid, the newer signs.
            self._insert()
            keys = self._read()
        return keys

    def load(self) -> list[SigningKey]:
        """``keys()``, then the connection is given back: a process re-reads its keys rarely
        (``RELOAD_SECONDS``) and need not hold a database connection in between."""
        try:
            return self.keys()
        finally:
            self._db.close()

    def rotate(self) -> SigningKey:
        """A new key that signs from now on; older keys keep verifying."""
        return self._insert()

    def retire(self, key_id: str) -> None:
        """What ``key_id`` signed stops verifying (in every process within ``RELOAD_SECONDS``)."""
        keys = self._read()
        if key_id not in {k.id for k in keys}:
            raise NotFoundError(f"no signing key {key_id!r} (see `chat-archive keys list`)")
        if keys[-1].id == key_id:
            raise ConfigError(f"{key_id} is the key that signs now: rotate first, then retire it")
        self._db.execute("DELETE FROM signing_keys WHERE id = ?", (key_id,))

    def _insert(self) -> SigningKey:
        key = SigningKey(secrets.token_hex(4), secrets.token_urlsafe(32).encode(), format_time(utcnow()))
        self._db.execute(
            "INSERT INTO signing_keys (id, secret, created_at) VALUES (?, ?, ?)", (key.id, key.secret.decode(), key.created_at)
        )
        return key

    def _read(self) -> list[SigningKey]:
        rows = self._db.query("SELECT id, secret, created_at FROM signing_keys ORDER BY created_at, id")
        return [SigningKey(row[0], row[1].encode(), row[2]) for row in rows]


class KeyRing:
    """The keys one process signs and verifies with, re-read from their source now and then."""

    def __init__(self, load: Callable[[], Sequence[SigningKey]], *, clock: Callable[[], float] = time.monotonic):
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._current: SigningKey | None = None
        self._loaded = self._missed = float("-inf")

    @classmethod
    def fixed(cls, secrets_: Sequence[str]) -> KeyRing:
        """Keys from the config: the first signs, all verify."""
        keys = [key_from_secret(s) for s in secrets_]
        return cls(lambda: list(reversed(keys)))

    def current(self) -> SigningKey:
        """The key that signs now."""
        self._refresh(RELOAD_SECONDS)
        assert self._current is not None
        return self._current

    def oldest(self) -> SigningKey:
        """The oldest key still listed (what should stay the same across rotations)."""
        self._refresh(RELOAD_SECONDS)
        return next(iter(self._keys.values()))

    def find(self, key_id: str) -> SigningKey | None:
        """The key named ``key_id``, or None if it is unknown (or retired)."""
        self._refresh(RELOAD_SECONDS)
        key = self._keys.get(key_id)
        if key is None and self._clock() - self._missed >= MISS_RELOAD_SECONDS:
            self._missed = self._clock()
            self._refresh(0)
            key = self._keys.get(key_id)
        return key

    def _refresh(self, max_age: float) -> None:
        with self._lock:
            if self._clock() - self._loaded < max_age and self._current is not None:
                return
            keys = list(self._load())
            if not keys:
                raise ConfigError("no signing key")
            self._keys = {k.id: k for k in keys}
            self._current = keys[-1]
            self._loaded = self._clock()
