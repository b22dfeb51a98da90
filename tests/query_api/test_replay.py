"""Replay as NDJSON: room events and the global log, cursors, redaction, constant memory, live follow."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc

from archive.codec import from_json
from query_api.roles import Role
from tests.factories import message

from .conftest import LOBBY, PUBLIC, SECRET, auth, seed_events


def ndjson(response) -> list[dict]:
    assert response.mimetype == "application/x-ndjson"
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines() if line]


def test_room_events_in_order_with_positions_as_cursor(client, tokens):
    lines = ndjson(client.get(f"/api/v1/rooms/{LOBBY}/events", headers=auth(tokens["compliance"])))
    expected = [e for e in seed_events() if e.room == LOBBY]
    assert [from_json(json.dumps(line["event"])) for line in lines] == expected
    positions = [line["position"] for line in lines]
    assert positions == sorted(positions)
    rest = ndjson(client.get(f"/api/v1/rooms/{LOBBY}/events?after={positions[3]}", headers=auth(tokens["compliance"])))
    assert [line["position"] for line in rest] == positions[4:]
    two = ndjson(client.get(f"/api/v1/rooms/{LOBBY}/events?limit=2", headers=auth(tokens["compliance"])))
    assert [line["position"] for line in two] == positions[:2]


def test_room_events_time_range(client, tokens):
    url = f"/api/v1/rooms/{LOBBY}/events?from=2024-05-01T12:00:10Z&to=2024-05-01T12:00:30Z"
    lines = ndjson(client.get(url, headers=auth(tokens["analyst"])))
    assert [line["event"]["type"] for line in lines] == ["message_posted", "message_posted", "message_corrected"]


def test_a_ranged_replay_is_in_room_order_and_resumes_after_a_position(private_app, private_seeded, tokens):
    """A backfilled message (archived last, an earlier second) comes in its second, and resuming
    after it neither repeats nor skips what follows it in that order."""
    client, headers = private_app.test_client(), auth(tokens["compliance"])

    def replay(url: str) -> list[dict]:
        with client.get(url, headers=headers) as response:  # closed: a stream holds a slot until then
            return ndjson(response)

    late = private_seeded.store.append([message(15, "backfilled", "bob", room=LOBBY, stanza_id="bf")])[0].position
    url = f"/api/v1/rooms/{LOBBY}/events?from=2024-05-01T12:00:10Z&to=2024-05-01T12:00:40Z"
    lines = replay(url)
    bodies = [line["event"].get("body") for line in lines]
    assert bodies == ["hello from lobby", "backfilled", "typo in lobby", "fixed in lobby", "oops lobby secret", None]
    for i, line in enumerate(lines):
        rest = replay(f"{url}&after={line['position']}")
        assert [r["position"] for r in rest] == [r["position"] for r in lines[i + 1 :]], line
    assert lines[1]["position"] == late


def test_real_jids_only_for_compliance(client, tokens):
    compliance = client.get(f"/api/v1/rooms/{LOBBY}/events", headers=auth(tokens["compliance"])).get_data(as_text=True)
    analyst = client.get(f"/api/v1/rooms/{LOBBY}/events", headers=auth(tokens["analyst"])).get_data(as_text=True)
    assert "alice@localhost/pc" in compliance and "bob@localhost/phone" in compliance
    assert "@localhost/" not in analyst
    assert len(analyst.splitlines()) == len(compliance.splitlines())


def test_global_log_shows_only_granted_rooms(client, tokens):
    everything = ndjson(client.get("/api/v1/events", headers=auth(tokens["compliance"])))
    granted = ndjson(client.get("/api/v1/events", headers=auth(tokens["analyst"])))
    assert {line["event"]["room"] for line in everything} == {LOBBY, SECRET, PUBLIC}
    assert {line["event"]["room"] for line in granted} == {LOBBY}
    assert SECRET not in json.dumps(granted)
    after = everything[5]["position"]
    assert ndjson(client.get(f"/api/v1/events?after={after}", headers=auth(tokens["compliance"]))) == everything[6:]


def test_replay_streams_in_constant_memory(private_app, private_seeded, tokens):
    client, archive = private_app.test_client(), private_seeded.store
    archive.append(message(1000 + i, f"line {i} " + "x" * 200, room=LOBBY) for i in range(20_000))
    response = client.get("/api/v1/events", headers=auth(tokens["compliance"]), buffered=False)
    assert response.is_streamed
    tracemalloc.start()
    size = count = 0
    for chunk in response.response:
        size += len(chunk)
        count += chunk.count(b"\n")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    response.close()
    assert count == 20_000 + len(seed_events())
    assert size > 4_000_000
    assert peak < size / 4  # a few pages and one chunk in memory, never the whole replay


def test_follow_tails_the_log_live(private_app, private_seeded, tokens):
    client, archive = private_app.test_client(), private_seeded.store
    stopping = private_app.extensions["chat_archive"].stopping
    last = archive.head()
    response = client.get(f"/api/v1/events?follow=true&after={last}", headers=auth(tokens["analyst"]), buffered=False)
    chunks = iter(response.response)
    got: list[bytes] = []

    def read():
        for chunk in chunks:
            got.append(chunk)
            if b"live one" in chunk:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    archive.append([message(5000, "not yours", room=SECRET), message(5001, "live one", room=LOBBY)])
    reader.join(10)
    stopping.set()
    response.close()
    text = b"".join(got).decode()
    assert "live one" in text and "not yours" not in text
    assert [json.loads(l)["event"]["body"] for l in text.splitlines() if l.strip()] == ["live one"]


def test_follow_sends_heartbeats_and_ends_when_the_server_stops(client, tokens, app):
    stopping = app.extensions["chat_archive"].stopping
    response = client.get("/api/v1/events?follow=true&after=999999", headers=auth(tokens["compliance"]), buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"\n"  # follow_heartbeat is 0.5 s in these tests
    threading.Timer(0.2, stopping.set).start()
    assert list(chunks) in ([], [b"\n"])  # the stream ends instead of blocking forever


def test_streams_are_limited_to_half_the_threads_and_a_few_per_client(private_app, token_store):
    client = private_app.test_client()  # [api] threads = 16: 8 streams at once, 4 per client
    clients = [auth(token_store.create(Role.COMPLIANCE)[0]) for _ in range(3)]
    follow = "/api/v1/events?follow=true"
    streams = [client.get(follow, headers=headers, buffered=False) for headers in clients[:2] for _ in range(4)]
    assert {s.status_code for s in streams} == {200}
    assert client.get(follow, headers=clients[0]).status_code == 429  # its own four
    refused = client.get(follow, headers=clients[2])
    assert refused.status_code == 503 and refused.json["error"]["code"] == "too_many_streams"
    assert client.get("/api/v1/events?limit=1", headers=clients[2]).status_code == 503  # replays are streams too
    assert client.get("/api/v1/rooms", headers=clients[2]).status_code == 200  # plain requests are not limited
    streams.pop().close()
    again = client.get(follow, headers=clients[2], buffered=False)
    assert again.status_code == 200
    private_app.extensions["chat_archive"].stopping.set()
    for stream in [*streams, again]:
        stream.close()
