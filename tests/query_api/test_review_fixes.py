"""Bugs a review found where a caller's input met a real server: each test failed before its fix."""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request

from query_api.server import start_server
from tests.factories import message

from .conftest import auth

UNICODE_ROOM = "日本語@conference.localhost"  # XMPP room names are Unicode (RFC 7622)


def test_a_room_with_a_unicode_name_exports_over_http(private_app, private_seeded, tokens):
    """The export's Content-Disposition named the room as it is: a header is Latin-1 (PEP 3333), so waitress
    could not send it and a compliance officer got a 500 (or a dropped connection) for any room named outside
    Latin-1. Now the name is an ASCII fallback plus RFC 6266's ``filename*``."""
    private_seeded.store.append([message(70, "konnichiwa", "alice", room=UNICODE_ROOM)])
    private_seeded.catch_up()
    stop = threading.Event()
    server = start_server(private_app, "127.0.0.1", 0, threads=2, stop=stop)
    try:
        for fmt in ("jsonl", "csv"):
            url = f"{server.url}/api/v1/export?room={urllib.parse.quote(UNICODE_ROOM)}&format={fmt}"
            with urllib.request.urlopen(urllib.request.Request(url, headers=auth(tokens["compliance"])), timeout=20) as r:
                assert r.status == 200 and b"konnichiwa" in r.read()
                disposition = r.headers["Content-Disposition"]
            assert disposition.startswith("attachment; filename=\"export-")
            assert f"filename*=UTF-8''export-{urllib.parse.quote(UNICODE_ROOM)}.{fmt}" in disposition
    finally:
        server.stop()
