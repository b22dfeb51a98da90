"""A corpus of hostile requests: forged cursors and tickets, oversized and deeply nested queries,
out-of-range values, odd room names, header tricks. Each is (name, method, path, caller, extra
headers, body, the statuses a sound server may answer with): never a 5xx, never a hang."""

from __future__ import annotations

import base64
import json
import zlib
from typing import NamedTuple
from urllib.parse import quote

import msgspec

from .conftest import LOBBY, PUBLIC

BAD = {400}
NO_ROOM = {404}


class Hostile(NamedTuple):
    name: str
    method: str
    path: str
    caller: str | None = None  # a role of the served tokens, or None (anonymous read is on)
    headers: dict | None = None
    body: bytes | None = None
    expected: frozenset[int] | set[int] = BAD


def old_search_cursor(q: str, *, sort: str = "relevance", ts: int = 0, key: int = 0, offset: int = 0) -> str:
    """A search cursor as anyone could compute it before cursors were signed."""
    raw = msgspec.msgpack.encode([zlib.crc32(f"{sort}\x00{q}".encode()), ts, key, offset])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def old_json_cursor(state) -> str:
    """A list cursor as anyone could compute it before cursors were signed: base64 JSON."""
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def q(text: str) -> str:
    return quote(text, safe="")


FUZZY_2500 = " ".join(f"word{i}~2" for i in range(2500))
WIDGET = f"/widget/{PUBLIC}/activity"

CORPUS = [
    # Forged cursors: the search cursor that made tantivy abort the process, and its relatives.
    Hostile("search cursor, offset 2^32", "GET", f"/api/v1/search?q=hello&cursor={old_search_cursor('hello', offset=2**32)}"),
    Hostile("search cursor, negative key", "GET",
            f"/api/v1/search?q=hello&sort=newest&cursor={old_search_cursor('hello', sort='newest', key=-1)}"),
    Hostile("search cursor, ts 2^63", "GET", f"/api/v1/search?q=x&sort=oldest&cursor={old_search_cursor('x', sort='oldest', ts=2**63)}"),
    Hostile("search cursor, 4 KiB of junk", "GET", f"/api/v1/search?q=x&cursor={'A' * 5000}"),
    Hostile("rooms cursor, unsigned JSON", "GET", f"/api/v1/rooms?cursor={old_json_cursor({'after': 'a'})}", "compliance"),
    Hostile("transcript cursor, unsigned", "GET",
            f"/api/v1/rooms/{LOBBY}/transcript?cursor={old_json_cursor({'c': 'x', 'd': 'forward'})}", "compliance"),
    Hostile("presence cursor, unsigned", "GET",
            f"/api/v1/rooms/{LOBBY}/presence?at=2024-05-01&cursor={old_json_cursor({'after': 1})}", "compliance"),
    Hostile("widget cursor, t out of range", "GET", f"{WIDGET}?cursor={old_json_cursor({'p': 1, 't': 1e300})}"),
    Hostile("widget cursor, negative p", "GET", f"{WIDGET}?cursor={old_json_cursor({'p': -5, 't': 0})}"),
    Hostile("day-page cursor, unsigned", "GET", f"/rooms/{PUBLIC}?day=2024-05-01&cursor=f:MTcxNDU2NDgxMDAwMDAwMDoy"),
    # Queries that cost too much, or nest too deep, on every entry point.
    Hostile("2,500 fuzzy terms, API", "GET", f"/api/v1/search?q={q(FUZZY_2500)[:30000]}"),
    Hostile("2,500 fuzzy terms, search page", "GET", f"/?q={q(FUZZY_2500[:4000])}", expected={200, 400}),
    Hostile("20 prefix terms", "GET", f"/api/v1/search?q={q(' OR '.join(['ab*'] * 20))}"),
    Hostile("deeply nested parentheses", "GET", f"/api/v1/search?q={q('(' * 1500 + 'a' + ')' * 1500)}"),
    Hostile("deeply nested NOT", "GET", f"/api/v1/search?q={q('NOT ' * 1000 + 'a')}"),
    Hostile("deeply nested, search page", "GET", f"/?q={q('(' * 1500 + 'a' + ')' * 1500)}", expected={200, 400}),
    Hostile("deeply nested, export", "GET", f"/api/v1/export?q={q('-(' * 1000 + 'a' + ')' * 1000)}", "compliance"),
    Hostile("query of 5,000 characters", "GET", f"/api/v1/search?q={'a' * 5000}"),
    Hostile("query string of 200 KB", "GET", f"/api/v1/search?q={'a' * 200_000}", expected={400, 414, 431}),
    # Values out of range.
    Hostile("limit 10^20", "GET", "/api/v1/search?q=x&limit=100000000000000000000"),
    Hostile("limit 0", "GET", "/api/v1/rooms?limit=0", "compliance"),
    Hostile("limit of 5,000 digits, search page", "GET", f"/?q=x&page={'9' * 5000}", expected={200, 400}),
    Hostile("page number in superscript digits, search page", "GET", "/?q=x&page=%C2%B2%C2%B3", expected={200, 400}),
    Hostile("calendar of December 9999, room page", "GET", f"/rooms/{PUBLIC}?day=2024-05-01&month=9999-12", expected={200, 400}),
    Hostile("a day of December 9999, room page", "GET", f"/rooms/{PUBLIC}?day=9999-12-01", expected={200, 400}),
    Hostile("sort unknown", "GET", "/api/v1/search?q=x&sort=evil"),
    Hostile("q twice", "GET", "/api/v1/search?q=x&q=y"),
    Hostile("unknown parameter", "GET", "/api/v1/rooms?debug=1", "compliance"),
    Hostile("day 9999-99-99", "GET", f"/api/v1/rooms/{PUBLIC}/transcript?day=9999-99-99"),
    Hostile("from -99999999w", "GET", f"/api/v1/rooms/{PUBLIC}/transcript?from=-99999999w"),
    Hostile("on:9999-12-31", "GET", f"/api/v1/search?q={q('on:9999-12-31')}", expected={200, 400}),
    Hostile("at year 1", "GET", f"/api/v1/rooms/{PUBLIC}/presence?at=0001-01-01"),
    Hostile("around in superscript digits", "GET", f"/api/v1/rooms/{PUBLIC}/transcript?around=%C2%B2", expected={404}),
    Hostile("around in superscript digits, room page", "GET", f"/rooms/{PUBLIC}?around=%C2%B2", expected={404}),
    Hostile("around 10^25", "GET", f"/api/v1/rooms/{PUBLIC}/transcript?around=10000000000000000000000000"),
    Hostile("around 10^25, room page", "GET", f"/rooms/{PUBLIC}?around=10000000000000000000000000"),
    Hostile("around of 5,000 digits, room page", "GET", f"/rooms/{PUBLIC}?around={'9' * 5000}"),
    Hostile("around of 5,000 letters, room page", "GET", f"/rooms/{PUBLIC}?around={'x' * 5000}"),
    Hostile("buckets 10^9", "GET", f"/api/v1/rooms/{PUBLIC}/presence?from=2024-05-01&to=2024-05-02&buckets=1000000000"),
    Hostile("after -1", "GET", "/api/v1/events?after=-1", "compliance"),
    Hostile("follow maybe", "GET", "/api/v1/events?follow=maybe", "compliance"),
    Hostile("state limit -1", "GET", f"/api/v1/rooms/{LOBBY}/state?limit=-1", "compliance"),
    # Room names and paths.
    Hostile("room with a NUL", "GET", "/api/v1/rooms/lobby%00@conference.localhost/transcript", expected=NO_ROOM),
    Hostile("room with CR LF", "GET", "/api/v1/rooms/lobby%0D%0AX-Injected:%201/transcript", expected=NO_ROOM),
    Hostile("room of 5,000 characters", "GET", f"/api/v1/rooms/{'r' * 5000}@x/transcript", expected=NO_ROOM),
    Hostile("room that is a glob", "GET", "/api/v1/rooms/*@conference.localhost/transcript", expected=NO_ROOM),
    Hostile("path traversal into static", "GET", "/static/../../../../etc/passwd", expected={404}),
    Hostile("widget of an unseen room", "GET", f"/widget/{LOBBY}/activity", expected={404}),
    # Authentication and tickets.
    Hostile("forged widget ticket", "GET", WIDGET, headers={"X-Widget-Ticket": "aaaaaaaa.e30.AAAA"}, expected={401}),
    Hostile("widget ticket of 100 KB", "GET", WIDGET, headers={"X-Widget-Ticket": "a" * 100_000}, expected={401, 431}),
    Hostile("token of 10 KB", "GET", "/api/v1/rooms", headers={"Authorization": "Bearer " + "x" * 10_000}, expected={401}),
    Hostile("Basic auth", "GET", "/api/v1/rooms", headers={"Authorization": "Basic YTpi"}, expected={401}),
    Hostile("site user of 5,000 characters", "GET", "/api/v1/rooms", "site", headers={"X-Chat-Archive-User": "u" * 5000}),
    Hostile("forged session cookie", "GET", "/rooms", headers={"Cookie": "chat_archive_session=aaaaaaaa.e30.AAAA"},
            expected={200, 303}),
    Hostile("metrics for a room-restricted token", "GET", "/metrics", "analyst", expected={403}),
    Hostile("ticket request that is not JSON", "POST", "/widget/tickets", "site",
            headers={"Content-Type": "application/json", "X-Chat-Archive-User": "carol"}, body=b"{not json"),
    Hostile("ticket request with a list for room", "POST", "/widget/tickets", "site",
            headers={"Content-Type": "application/json", "X-Chat-Archive-User": "carol"}, body=b'{"room": ["a"]}'),
    Hostile("ticket request with a nick of a lone surrogate", "POST", "/widget/tickets", "site",
            headers={"Content-Type": "application/json", "X-Chat-Archive-User": "carol"},
            body=b'{"room": "%s", "nick": "\\ud800"}' % PUBLIC.encode()),
    Hostile("ticket request, 100 KiB body", "POST", "/widget/tickets", "site",
            headers={"Content-Type": "application/json", "X-Chat-Archive-User": "carol"},
            body=b'{"room": "' + b"x" * (100 << 10) + b'"}', expected={413}),
    Hostile("sign-in without its CSRF token", "POST", "/signin", headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=b"token=x&next=/%09/evil.example", expected={403}),
    Hostile("sign-in page with CR LF in next", "GET", "/signin?next=/%0D%0ASet-Cookie:%20x=1", expected={200}),
    Hostile("sign-in with an Origin that is no URL", "POST", "/signin", headers={"Origin": "http://[", "Content-Type": "application/x-www-form-urlencoded"},
            body=b"token=x", expected={403}),
    Hostile("sign-out with an Origin that is no URL", "POST", "/signout", headers={"Origin": "http://[::1"}, expected={403}),
    Hostile("search by POST", "POST", "/api/v1/search?q=x", expected={405}),
    # JSON nested deeper than the parser's stack: its RecursionError escaped get_json(silent=True), a 500.
    Hostile("ticket request nested 2,000 deep", "POST", "/widget/tickets", "site",
            headers={"Content-Type": "application/json", "X-Chat-Archive-User": "carol"}, body=b"[" * 2000),
    Hostile("ticket request, objects nested 7,000 deep", "POST", "/widget/tickets", "site",
            headers={"Content-Type": "application/json", "X-Chat-Archive-User": "carol"}, body=b'{"room":' * 7_000),
]  # fmt: skip


def nul_in(parameter: str, path: str, caller: str | None = "compliance", where: str = "") -> Hostile:
    """A text parameter holding a NUL: PostgreSQL's text refuses one (a driver error, answered 503 as if the store
    were down, where SQLite found nothing); a 400 naming the parameter on both stores."""
    return Hostile(f"NUL in {parameter}{where}", "GET", path, caller)


_RANGE = "from=2024-05-01&to=2024-05-02"
NUL_CORPUS = [
    nul_in("nick", f"/api/v1/rooms/{LOBBY}/presence?{_RANGE}&nick=alice%00"),
    nul_in("jid", f"/api/v1/rooms/{LOBBY}/presence?{_RANGE}&jid=alice%00@localhost"),
    nul_in("around", f"/api/v1/rooms/{LOBBY}/transcript?around=m1-lobby%00"),
    nul_in("around", f"/rooms/{PUBLIC}?around=m1-public%00", None, ", room page"),
    nul_in("tz", f"/api/v1/rooms/{LOBBY}/transcript?tz=UTC%00"),
    nul_in("format", f"/api/v1/rooms/{LOBBY}/transcript?format=json%00"),
    nul_in("who", "/api/v1/audit?who=carol%00"),
    nul_in("trail", "/api/v1/audit?trail=chat-archive:audit%00"),
    nul_in("q", "/api/v1/search?q=hello%00"),
    nul_in("q", "/api/v1/export?q=hello%00", where=", export"),
    nul_in("room", "/api/v1/export?room=lobby%00@conference.localhost", where=", export"),
    nul_in("cursor", "/api/v1/rooms?cursor=a%00", where=", rooms"),
]
CORPUS += NUL_CORPUS
