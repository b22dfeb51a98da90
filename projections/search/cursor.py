"""A search page's cursor: where the next page of the same query and sort begins.

The API signs what it hands out (``query_api``); here a cursor is tied to its query and sort (``check``) and
bounds-checked, so a cursor of another query, or one with values tantivy cannot take, is refused as bad input.
"""

from __future__ import annotations

import base64

import msgspec

from archive.errors import InvalidQueryError

_I64 = 2**63


class PageCursor(msgspec.Struct, array_like=True, frozen=True):
    check: int  # ties the cursor to its query and sort
    ts: int = 0
    key: int = 0
    offset: int = 0


_encode_cursor = msgspec.msgpack.Encoder().encode
_decode_cursor = msgspec.msgpack.Decoder(PageCursor).decode


def write_cursor(cursor: PageCursor) -> str:
    return base64.urlsafe_b64encode(_encode_cursor(cursor)).decode().rstrip("=")


def read_cursor(text: str, check: int, max_offset: int) -> PageCursor:
    """The cursor ``write_cursor`` made of a page of the query and sort ``check`` names; ``max_offset``: how deep
    relevance pages go."""
    try:
        cursor = _decode_cursor(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, msgspec.DecodeError):
        raise InvalidQueryError("the cursor is not one this search returned") from None
    if cursor.check != check:
        raise InvalidQueryError("the cursor belongs to a different query or sort")
    if not (0 <= cursor.offset < max_offset and -_I64 <= cursor.ts < _I64 and 0 <= cursor.key < _I64):
        raise InvalidQueryError(f"the cursor is out of range (relevance paging stops at {max_offset} hits)")
    return cursor
