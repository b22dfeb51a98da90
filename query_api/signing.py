"""Signed values: everything the server hands out and gets back (cursors, tickets, sessions).

``Signer.sign(payload, purpose, ttl=...)`` returns a URL-safe token
``<key id>.<body>.<mac>``: the body is base64url JSON of the payload and its
expiry, the MAC an HMAC-SHA256 under the server key (``query_api.keys``) over
the purpose, the key id and the body. ``Signer.verify(token, purpose)`` returns
the payload, or raises ``SignatureError`` (an ``InvalidQueryError``, so a
400 unless the caller maps it otherwise, as tickets do to 401) when the token
is malformed, forged, made for another purpose, expired or signed by a retired
key. The purpose keeps a token from being replayed where another kind is
expected (a search cursor as a widget ticket).

Signing proves the server made a value, not that the value is sane for this
request: callers still bounds-check what they get back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import msgspec

from archive.errors import InvalidQueryError

from .keys import KeyRing

MAX_TOKEN_CHARS = 8192
KEY_ID_CHARS = 8
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class SignatureError(InvalidQueryError):
    """A token this server did not sign for this purpose, or no longer accepts."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


class Signer:
    def __init__(self, keys: KeyRing, *, clock: Callable[[], float] = time.time):
        self.keys = keys
        self._clock = clock

    def sign(self, payload: Any, purpose: str, *, ttl: float | None = None) -> str:
        """A token standing for ``payload`` (anything JSON can hold), valid ``ttl`` seconds (None: no expiry)."""
        expires = 0 if ttl is None else int(self._clock() + ttl) + 1
        body = _b64(_encode([expires, payload]))
        key = self.keys.current()
        return f"{key.id}.{body}.{_b64(_mac(key.secret, purpose, key.id, body))}"

    def verify(self, token: str, purpose: str) -> Any:
        """The payload ``token`` stands for; raises ``SignatureError`` otherwise."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise SignatureError(f"not a {purpose} this server issued")
        key_id, body, mac = token.split(".")
        key = self.keys.find(key_id)
        if key is None or not hmac.compare_digest(_unb64(mac), _mac(key.secret, purpose, key_id, body)):
            raise SignatureError(f"not a {purpose} this server issued (or its signing key was retired)")
        try:
            expires, payload = _decode(_unb64(body))
        except (ValueError, TypeError, msgspec.DecodeError):  # signed but unreadable: only a bug could do that
            raise SignatureError(f"not a {purpose} this server issued") from None
        if expires and self._clock() >= expires:
            raise SignatureError(f"this {purpose} has expired", expired=True)
        return payload

    def mac(self, purpose: str, data: str) -> str:
        """A hex MAC of ``data`` under the current key, its id first (for values a request sends
        back beside what they stand for, as a form's CSRF token)."""
        key = self.keys.current()
        return key.id + hmac.new(key.secret, f"{purpose}\x00{data}".encode(), hashlib.sha256).hexdigest()

    def check_mac(self, purpose: str, data: str, sent: str) -> bool:
        key_id, digest = sent[:KEY_ID_CHARS], sent[KEY_ID_CHARS:]
        key = self.keys.find(key_id) if len(sent) > KEY_ID_CHARS else None
        if key is None:
            return False
        expected = hmac.new(key.secret, f"{purpose}\x00{data}".encode(), hashlib.sha256).hexdigest()
        # As bytes: compare_digest raises TypeError for a str with non-ASCII in it (``sent`` is what a form sent).
        return hmac.compare_digest(digest.encode(), expected.encode())


def _mac(secret: bytes, purpose: str, key_id: str, body: str) -> bytes:
    return hmac.new(secret, f"{purpose}\x00{key_id}.{body}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return b""
