"""Compliance export of a room's time range: JSON lines or CSV, every edit and retraction, SHA-256 trailer."""

from __future__ import annotations

import csv
import hashlib
import io
import json

from .conftest import LOBBY, MISSING, SECRET, auth


def split_trailer(body: bytes) -> tuple[bytes, bytes]:
    content, _, trailer = body.rstrip(b"\n").rpartition(b"\n")
    return content + b"\n", trailer


def test_jsonl_export_with_edits_retractions_and_digest(client, tokens):
    response = client.get(f"/api/v1/export?room={SECRET}", headers=auth(tokens["compliance"]))
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    content, trailer = split_trailer(response.data)
    lines = [json.loads(line) for line in content.splitlines()]
    types = [line["event"]["type"] for line in lines]
    assert "message_corrected" in types and "message_retracted" in types
    assert any(line["event"].get("body") == "oops secret secret" for line in lines)  # the retracted original
    assert "alice@localhost/pc" in content.decode()  # real JIDs for compliance
    summary = json.loads(trailer)
    assert (summary["sha256"], summary["count"]) == (hashlib.sha256(content).hexdigest(), len(lines))
    manifest = summary["manifest"]
    assert manifest["rooms"] == [SECRET] and manifest["from"] is None and manifest["query"] is None
    assert [h[0] for h in manifest["chain_heads"]] == [SECRET]  # [stream, version, link, genesis version]


def test_csv_export_time_range_and_digest(client, tokens):
    url = f"/api/v1/export?room={LOBBY}&from=2024-05-01T12:00:10Z&to=2024-05-01T12:00:35Z&format=csv"
    response = client.get(url, headers=auth(tokens["compliance"]))
    assert response.mimetype == "text/csv"
    content, trailer = split_trailer(response.data)
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert [r["type"] for r in rows] == ["message_posted", "message_posted", "message_corrected", "message_posted", "message_retracted"]
    correction = rows[2]
    assert correction["refers_to"] == "m2-lobby" and correction["body"] == "fixed in lobby"
    assert json.loads(rows[4]["details"])["by_jid"] == "bob@localhost/phone"
    digest_part, _, manifest = trailer.decode().partition(" manifest=")
    assert digest_part == f"# sha256={hashlib.sha256(content).hexdigest()} count={len(rows)}"
    assert json.loads(manifest)["from"] == "2024-05-01T12:00:10Z"


def test_export_is_for_compliance_only_and_checks_its_input(client, tokens):
    for role, user in (("analyst", None), ("site", "carol")):
        assert client.get(f"/api/v1/export?room={LOBBY}", headers=auth(tokens[role], user)).status_code == 403
    assert client.get(f"/api/v1/export?room={LOBBY}").status_code == 401  # anonymous read is on, export needs a token
    compliance = auth(tokens["compliance"])
    assert client.get(f"/api/v1/export?room={MISSING}", headers=compliance).status_code == 404
    assert client.get("/api/v1/export", headers=compliance).json["error"]["code"] == "invalid_parameter"
    assert client.get(f"/api/v1/export?room={LOBBY}&format=xml", headers=compliance).status_code == 400
    assert client.get(f"/api/v1/export?room={LOBBY}&from=yesterday", headers=compliance).status_code == 400


def test_export_of_a_search_carries_each_message_with_its_edits_and_retraction(client, tokens):
    compliance = auth(tokens["compliance"])
    response = client.get("/api/v1/export?q=fixed", headers=compliance)
    content, trailer = split_trailer(response.data)
    events = [json.loads(line)["event"] for line in content.splitlines()]
    assert [(e["type"], e["room"]) for e in events] == [
        (kind, room) for room in (LOBBY, SECRET, "public@conference.localhost") for kind in ("message_posted", "message_corrected")
    ]
    assert json.loads(trailer)["sha256"] == hashlib.sha256(content).hexdigest()
    removed = client.get(f"/api/v1/export?q=oops&room={LOBBY}&format=csv", headers=compliance)
    rows = list(csv.DictReader(io.StringIO(split_trailer(removed.data)[0].decode())))
    assert [(r["type"], r["body"]) for r in rows] == [("message_posted", "oops lobby secret"), ("message_retracted", "")]
    assert rows[1]["refers_to"] == "r-lobby"
    window = client.get("/api/v1/export?q=fixed&from=2024-05-01T13:00:00Z", headers=compliance)
    assert json.loads(split_trailer(window.data)[1])["count"] == 0
    bad = client.get("/api/v1/export?q=%28unclosed", headers=compliance)
    assert bad.status_code == 400 and "position" in bad.json["error"]
