"""The audit trail over the API and the pages, on SQLite and PostgreSQL: every read recorded, compliance reads them."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest

from archive.application import open_event_store
from archive.audit import read_audit
from archive.events import AUDIT_STREAM, ContentRead, Recorded, copied_trail
from archive.integrity import verify_integrity
from query_api import create_app
from query_api.roles import Role
from query_api.tokens import open_token_store

from tests.archive.test_integrity import run_sql

from .conftest import LOBBY, SECRET, auth, make_config, seed_events
from .web.test_pages import sign_in


@pytest.fixture
def audited(private_seeded, tmp_path):
    """(app, store, tokens by role, token ids by role) over a fresh seeded archive (on each store)."""
    url, store = private_seeded.url, private_seeded.store
    token_store = open_token_store(url, cache_seconds=0)
    ids = {}
    tokens = {}
    for role, rooms in ((Role.COMPLIANCE, ()), (Role.ANALYST, (LOBBY,)), (Role.SITE, (LOBBY,))):
        tokens[role.value], info = token_store.create(role, rooms)
        ids[role.value] = info.id
    app = create_app(make_config(url, export_dir=str(tmp_path / "exports")), store=store, views=private_seeded.views,
                     search=private_seeded.search, tokens=token_store)
    app.config["STORE_URL"] = url
    yield app, store, tokens, ids
    token_store.close()


def last_record(store):
    return list(read_audit(store))[-1].event


@pytest.mark.parametrize(
    ("url", "role", "kind", "rooms", "results"),
    [
        ("/api/v1/search?q=hello", "compliance", "search", (), 3),
        (f"/api/v1/rooms/{LOBBY}/transcript?from=2024-05-01&to=2024-05-02", "site", "transcript", (LOBBY,), 9),
        (f"/api/v1/rooms/{LOBBY}/presence?at=2024-05-01T12:00:15Z", "analyst", "presence", (LOBBY,), 2),
        (f"/api/v1/rooms/{LOBBY}/state?at=2024-05-01T12:00:15Z", "compliance", "state", (LOBBY,), 6),
        (f"/api/v1/rooms/{LOBBY}/events", "analyst", "replay", (LOBBY,), 11),
        (f"/api/v1/export?room={SECRET}&format=csv", "compliance", "export", (SECRET,), 11),
    ],
)
def test_every_read_is_recorded_with_who_what_when_and_how_many(audited, url, role, kind, rooms, results):
    app, store, tokens, ids = audited
    user = "carol" if role == "site" else None
    response = app.test_client().get(url, headers=auth(tokens[role], user))
    assert response.status_code == 200
    response.get_data()  # a streamed answer is recorded when it closes
    response.close()
    record = last_record(store)
    assert (record.via, record.role, record.token_id, record.user) == ("api", role, ids[role], user)
    assert record.endpoint.startswith(kind + " /api/v1/") and record.rooms == rooms
    assert record.results == results and record.status == 200
    if "from=" in url:
        assert record.range_from.isoformat().startswith("2024-05-01")


def test_refused_reads_are_recorded_too_and_the_query_is_kept(audited):
    app, store, tokens, _ = audited
    client = app.test_client()
    assert client.get(f"/api/v1/rooms/{SECRET}/transcript", headers=auth(tokens["site"], "carol")).status_code == 404
    assert (last_record(store).status, last_record(store).rooms) == (404, (SECRET,))
    client.get("/api/v1/search?q=from:alice%20secret", headers=auth(tokens["compliance"]))
    assert last_record(store).query == "from:alice secret"


def test_only_compliance_reads_the_trail_filtered_by_who_and_time(audited):
    app, store, tokens, ids = audited
    client = app.test_client()
    client.get("/api/v1/search?q=hello", headers=auth(tokens["site"], "carol"))
    client.get(f"/api/v1/rooms/{LOBBY}/events", headers=auth(tokens["analyst"])).close()
    for role in ("site", "analyst"):
        assert client.get("/api/v1/audit", headers=auth(tokens[role], "carol" if role == "site" else None)).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401
    body = client.get("/api/v1/audit", headers=auth(tokens["compliance"])).json
    # Refusals included: two reads, two refused audit reads, one without a token.
    assert [r["record"].get("role") for r in body["records"]] == ["site", "analyst", "site", "analyst", None]
    assert [r["record"]["status"] for r in body["records"]][2:] == [403, 403, 401]
    assert body["next_after"] is None
    mine = client.get("/api/v1/audit?who=carol", headers=auth(tokens["compliance"])).json["records"]
    assert {r["record"]["user"] for r in mine} == {"carol"} and len(mine) == 2
    by_token = client.get(f"/api/v1/audit?who={ids['analyst']}&limit=1", headers=auth(tokens["compliance"])).json
    assert len(by_token["records"]) == 1 and by_token["next_after"] is not None
    later = client.get("/api/v1/audit?since=2999-01-01", headers=auth(tokens["compliance"])).json
    assert later["records"] == []
    assert client.get("/api/v1/audit?limit=0", headers=auth(tokens["compliance"])).status_code == 400


def test_a_filter_that_matches_nothing_reads_a_bounded_page_and_paging_finds_every_match(audited, monkeypatch):
    """GET /audit?who=X read the whole trail when nothing matched (any compliance caller, per request; the trail
    grows with every request). A page now looks at SCAN records at most and says where to go on from."""
    import archive.audit

    app, store, tokens, _ = audited
    client = app.test_client()
    for i in range(6):
        client.get("/api/v1/search?q=hello", headers=auth(tokens["site"], "carol" if i % 3 == 0 else "dave"))
    monkeypatch.setattr(archive.audit, "SCAN", 4, raising=False)  # raising: the test must fail without SCAN too
    head = len(list(read_audit(store)))
    nothing = client.get("/api/v1/audit?who=nobody", headers=auth(tokens["compliance"])).json
    assert nothing == {"records": [], "next_after": 4}
    expected = [r.position for r in read_audit(store, who="carol")]
    found, after, pages = [], 0, 0
    while after is not None:
        page = client.get(f"/api/v1/audit?who=carol&after={after}", headers=auth(tokens["compliance"])).json
        found += [r["position"] for r in page["records"]]
        assert page["next_after"] is None or page["next_after"] - after <= 4
        after, pages = page["next_after"], pages + 1
    assert found == expected and len(found) == 2 and pages >= head // 4
    huge = client.get(f"/api/v1/audit?who=carol&after={2**63 - 1}", headers=auth(tokens["compliance"]))
    assert huge.status_code == 200 and huge.json == {"records": [], "next_after": None}
    assert sign_in(client, tokens["compliance"]).status_code == 303
    web = client.get("/audit?who=nobody").get_data(as_text=True)
    assert "No reads that match among records 1 to 4" in web and "after=4" in web


def test_the_trail_is_hash_chained_and_a_removed_record_is_found(audited):
    app, store, tokens, _ = audited
    client = app.test_client()
    for _ in range(3):
        client.get("/api/v1/search?q=hello", headers=auth(tokens["compliance"]))
    assert verify_integrity(store, "chat-archive:audit").ok
    run_sql(app.config["STORE_URL"], "DELETE FROM archive_audit WHERE seq=2")
    (broken,) = [s.broken for s in verify_integrity(store).streams if s.broken]
    assert (broken.stream, broken.version) == ("chat-archive:audit", 2)


def test_no_content_is_served_when_the_trail_cannot_be_written(audited):
    app, store, tokens, _ = audited

    def refuse(record):
        from archive.errors import StoreError

        raise StoreError("audit table gone")

    store.append_audit = refuse
    response = app.test_client().get("/api/v1/search?q=hello", headers=auth(tokens["compliance"]))
    assert response.status_code == 503 and response.json["error"]["code"] == "audit_unavailable"
    assert "hello" not in response.get_data(as_text=True)


def test_metrics_and_caching_see_the_answer_the_audit_made(audited):
    """The answer a client gets when its read cannot be recorded (503) is the one /metrics counts and the one
    marked not to be cached and given the security headers: the request hooks that observe and mark an answer
    run after the audit's."""
    app, store, tokens, _ = audited

    def refuse(record):
        from archive.errors import StoreError

        raise StoreError("audit table gone")

    store.append_audit = refuse
    client = app.test_client()
    response = client.get("/api/v1/search?q=hello", headers=auth(tokens["compliance"]))
    text = client.get("/metrics", headers=auth(tokens["compliance"])).get_data(as_text=True)
    assert 'chat_archive_api_requests_total{endpoint="/api/v1/search",status="503"} 1' in text
    assert 'endpoint="/api/v1/search",status="200"' not in text
    assert response.status_code == 503 and response.headers.get("Cache-Control") == "no-store"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"


def test_pages_record_reads_and_show_the_trail_to_compliance_only(audited):
    app, store, tokens, _ = audited
    client = app.test_client()
    assert sign_in(client, tokens["compliance"]).status_code == 303
    assert client.get(f"/rooms/{LOBBY}?day=2024-05-01").status_code == 200
    record = last_record(store)
    assert (record.via, record.role, record.rooms) == ("web", "compliance", (LOBBY,)) and record.results == 9
    page = client.get("/audit?who=compliance").get_data(as_text=True)
    assert f"/rooms/{LOBBY}" in page
    other = app.test_client()
    assert sign_in(other, tokens["site"], "carol").status_code == 303
    assert other.get("/audit").status_code == 403


def test_the_command_line_records_its_reads_and_prints_the_trail(tmp_path, capsys):
    from chat_archive.cli import main

    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        store.append(seed_events())
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{url}"\n[index]\npath = "{tmp_path}/index"\n')
    assert main(["--config", str(config), "events", LOBBY, "--from", "2024-05-01"]) == 0
    assert main(["--config", str(config), "verify", "--integrity"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "audit", "--who", "operator", "--json"]) == 0
    records = [json.loads(line)["record"] for line in capsys.readouterr().out.splitlines()]
    assert [(r["via"], r["endpoint"]) for r in records] == [("cli", "events"), ("cli", "verify --integrity")]
    assert records[0]["rooms"] == [LOBBY] and records[0]["results"] == 11
    assert main(["--config", str(config), "audit", "--since=-1h"]) == 0
    out = capsys.readouterr().out
    assert "events rooms=" + LOBBY in out and "-> 11 results" in out
    with open_event_store(url) as store:
        assert last_record(store).endpoint == "audit"
    # Nothing matching is said, as `hold list` says it (the command printed nothing at all).
    assert main(["--config", str(config), "audit", "--who", "nobody"]) == 0
    assert capsys.readouterr().out == "no audit records match\n"


def test_the_trail_in_a_terminal_shows_what_callers_sent_escaped(audited, tmp_path, capsys):
    """A room in the path (or a query) is whatever a caller sends: `chat-archive audit` printed it raw, so
    any caller could send the compliance officer's terminal its escape sequences (clear it, retitle it)."""
    from chat_archive.cli import main

    app, store, tokens, _ = audited
    hostile = "%1b%5b2J%1b%5d0;pwned%07@x"
    assert app.test_client().get(f"/api/v1/rooms/{hostile}/presence", headers=auth(tokens["analyst"])).status_code == 404
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{app.config["STORE_URL"]}"\n[index]\npath = "{tmp_path}/index"\n')
    assert main(["--config", str(config), "audit"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "presence /api/v1/rooms/\\x1b[2J\\x1b]0;pwned\\x07@x/presence" in out


def test_the_archives_own_streams_are_not_replayed_as_rooms(audited):
    from archive.integrity import write_checkpoint
    from archive.retention import place_hold

    app, store, tokens, _ = audited
    place_hold(store, case="Acme")
    write_checkpoint(store)
    for role in ("compliance", "analyst"):
        log = app.test_client().get("/api/v1/events", headers=auth(tokens[role])).get_data(as_text=True)
        assert log and "chat-archive:" not in log and "legal_hold" not in log
    rooms = app.test_client().get("/api/v1/rooms", headers=auth(tokens["compliance"])).json["rooms"]
    assert all(not r["room"].startswith("chat-archive:") for r in rooms)


def one_turn_app(seeded):
    """The app over ``seeded`` with one turn ([api] active_requests = 1), its token store and a compliance token."""
    token_store = open_token_store(seeded.url, cache_seconds=0)
    token, _ = token_store.create(Role.COMPLIANCE)
    app = create_app(make_config(seeded.url, active_requests=1), store=seeded.store, views=seeded.views,
                     search=seeded.search, tokens=token_store)
    return app, token_store, token


def test_a_request_waiting_for_its_audit_commit_lets_another_run_meanwhile(private_seeded):
    """With one turn ([api] active_requests = 1), a request whose record is being committed does not hold it."""
    app, token_store, token = one_turn_app(private_seeded)
    store = private_seeded.store
    committing, other_done = threading.Event(), threading.Event()
    append = store.append_audit

    def slow_first_commit(record):
        if not committing.is_set():  # the first request's commit, held open until the other is answered
            committing.set()
            other_done.wait(10)
        append(record)

    store.append_audit = slow_first_commit
    statuses = []

    def get(url, then=lambda: None):
        statuses.append(app.test_client().get(url, headers=auth(token)).status_code)
        then()

    first = threading.Thread(target=get, args=("/api/v1/search?q=hello",))
    first.start()
    assert committing.wait(10)
    other = threading.Thread(target=get, args=(f"/api/v1/rooms/{LOBBY}/transcript", other_done.set))
    other.start()
    other.join(5)  # would wait for the first's turn, and so for its commit, were the turn not lent
    answered_meanwhile = other_done.is_set()
    other_done.set()
    first.join(10)
    token_store.close()
    assert answered_meanwhile and statuses == [200, 200]
    assert [r.event.endpoint.split()[0] for r in read_audit(store)][-2:] == ["transcript", "search"]


def test_a_request_whose_audit_record_is_committed_answers_while_another_holds_the_turn(private_seeded):
    """With one turn, the commit is a request's last wait: once its record is committed it answers without
    queueing for a turn again behind the requests running (``busy.given_up``)."""
    app, token_store, token = one_turn_app(private_seeded)
    store = private_seeded.store
    committing, resume = threading.Event(), threading.Event()
    append = store.append_audit

    def held_commit(record):
        committing.set()
        resume.wait(10)
        append(record)

    store.append_audit = held_commit
    statuses = []
    first = threading.Thread(
        target=lambda: statuses.append(app.test_client().get("/api/v1/search?q=hello", headers=auth(token)).status_code)
    )
    first.start()
    assert committing.wait(10)
    turns = app.wsgi_app._turns
    turns.__enter__()  # another request holds the one turn as the commit ends
    try:
        resume.set()
        first.join(5)  # would wait for that turn, were it taken again after the commit
        answered = not first.is_alive()
    finally:
        turns.__exit__(None, None, None)
    first.join(10)
    token_store.close()
    assert answered and statuses == [200]
    assert list(read_audit(store))[-1].event.endpoint.split()[0] == "search"

def test_the_widget_feed_is_recorded_like_any_transcript_read(audited):
    """The widget's feed serves a room's lines (its last 50, then every change) to a site's users and to
    anonymous visitors, and no read of it was recorded: a site user could read a room through the widget
    with no trace in the trail. Now each poll is recorded as a transcript read, with who the ticket stands for."""
    app, store, tokens, ids = audited
    client = app.test_client()
    ticket = client.post("/widget/tickets", json={"room": LOBBY}, headers=auth(tokens["site"], "carol")).json["ticket"]
    feed = client.get(f"/widget/{LOBBY}/activity", headers={"X-Widget-Ticket": ticket})
    assert feed.status_code == 200 and feed.json["items"]
    record = last_record(store)
    assert record.endpoint == f"transcript /widget/{LOBBY}/activity" and record.status == 200
    assert (record.role, record.token_id, record.user, record.rooms) == ("site", ids["site"], "carol", (LOBBY,))
    assert record.results == len(feed.json["items"])
    assert client.get(f"/widget/{SECRET}/activity", headers={"X-Widget-Ticket": ticket}).status_code == 401
    assert (last_record(store).status, last_record(store).rooms) == (401, (SECRET,))  # refused reads too


def test_compliance_reads_a_trail_copied_from_the_store_this_one_came_from(audited):
    """After `migrate` (or a backup's restore) the source's trail is kept beside the store's own
    (``archive.copied_trails``): `trail=chat-archive:audit:copied` pages through it as through the own one."""
    app, store, tokens, _ = audited
    copied = copied_trail(AUDIT_STREAM)
    elsewhere = [Recorded(seq, record_read_elsewhere(seq)) for seq in range(1, 6)]
    store.copy_audit(copied, elsewhere)
    client = app.test_client()
    first = client.get(f"/api/v1/audit?trail={copied}&limit=3", headers=auth(tokens["compliance"])).json
    assert [r["record"]["query"] for r in first["records"]] == ["elsewhere 1", "elsewhere 2", "elsewhere 3"]
    rest = client.get(f"/api/v1/audit?trail={copied}&after={first['next_after']}",
                      headers=auth(tokens["compliance"])).json
    assert [r["position"] for r in rest["records"]] == [4, 5] and rest["next_after"] is None
    own = client.get("/api/v1/audit", headers=auth(tokens["compliance"])).json
    assert "elsewhere 1" not in json.dumps(own)  # the store's own trail holds the reads made on it
    unknown = client.get("/api/v1/audit?trail=nothing", headers=auth(tokens["compliance"]))
    assert unknown.status_code == 400 and unknown.json["error"]["code"] == "invalid_parameter", unknown.json
    assert copied in unknown.json["error"]["message"]


def record_read_elsewhere(seq: int) -> ContentRead:
    at = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    return ContentRead(room=AUDIT_STREAM, occurred_at=at, recorded_at=at, request_id=f"r{seq}", via="cli",
                       endpoint="search", query=f"elsewhere {seq}")


def test_the_audit_page_offers_and_shows_a_copied_trail(audited):
    app, store, tokens, _ = audited
    copied = copied_trail(AUDIT_STREAM)
    client = app.test_client()
    assert sign_in(client, tokens["compliance"]).status_code == 303
    assert copied not in client.get("/audit").get_data(as_text=True)  # no copy kept: nothing to choose
    store.copy_audit(copied, [Recorded(seq, record_read_elsewhere(seq)) for seq in range(1, 4)])
    assert f'<option value="{copied}"' in client.get("/audit").get_data(as_text=True)
    page = client.get(f"/audit?trail={copied}").get_data(as_text=True)
    assert "elsewhere 1" in page and "elsewhere 3" in page and f'<option value="{copied}" selected' in page
    assert "elsewhere 1" not in client.get("/audit").get_data(as_text=True)


def test_a_read_of_a_copied_trail_is_recorded_by_its_name_alike_on_the_api_the_pages_and_the_command_line(
        audited, tmp_path, capsys):
    """The API and the page recorded `audit /api/v1/audit` for `?trail=chat-archive:audit:copied`, as for the store's
    own trail, while the command line recorded `audit --trail ...`: one rule (``archive.audit.trail_endpoint``)."""
    from chat_archive.cli import main

    app, store, tokens, _ = audited
    copied = copied_trail(AUDIT_STREAM)
    store.copy_audit(copied, [Recorded(seq, record_read_elsewhere(seq)) for seq in range(1, 4)])
    client = app.test_client()
    assert client.get(f"/api/v1/audit?trail={copied}", headers=auth(tokens["compliance"])).status_code == 200
    api_read = last_record(store).endpoint
    assert client.get("/api/v1/audit?trail=nothing", headers=auth(tokens["compliance"])).status_code == 400
    refused = last_record(store).endpoint  # what was asked for, though refused
    assert sign_in(client, tokens["compliance"]).status_code == 303
    assert client.get(f"/audit?trail={copied}").status_code == 200
    page_read = last_record(store).endpoint
    assert client.get("/audit").status_code == 200
    own_read = last_record(store).endpoint
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{app.config["STORE_URL"]}"\n[index]\npath = "{tmp_path}/index"\n')
    assert main(["--config", str(config), "audit", "--trail", copied]) == 0
    assert (api_read, refused, page_read, own_read, last_record(store).endpoint) == (
        f"audit /api/v1/audit trail={copied}", "audit /api/v1/audit trail=nothing", f"audit /audit trail={copied}",
        "audit /audit", f"audit trail={copied}")


def test_an_export_job_is_recorded_with_its_rooms_query_and_range_wherever_they_were_given(audited):
    """A form body (the page's export form POSTs one; the API takes one too) and the download, which names only
    the job: the record says what was exported, not ``rooms=()``, which elsewhere means the whole scope."""
    from tests.query_api.test_export_jobs import wait_done

    app, store, tokens, _ = audited
    client = app.test_client()
    headers = auth(tokens["compliance"])
    form = {"format": "jsonl", "room": LOBBY, "from": "2024-05-01", "to": "2024-05-02", "q": "hello"}
    started = client.post("/api/v1/exports", data=form, headers=headers)
    assert started.status_code == 202
    wanted = ((LOBBY,), "hello", "2024-05-01", "2024-05-02")
    record = last_record(store)
    assert (record.rooms, record.query, str(record.range_from)[:10], str(record.range_to)[:10]) == wanted
    job = started.json["id"]
    assert wait_done(client, f"/api/v1/exports/{job}", headers).json["state"] == "done"
    download = client.get(f"/api/v1/exports/{job}/download", headers=headers)
    assert download.status_code == 200
    download.close()
    record = last_record(store)
    assert record.endpoint.startswith("export /api/v1/exports/") and record.results == download_events(job, client, headers)
    assert (record.rooms, record.query, str(record.range_from)[:10], str(record.range_to)[:10]) == wanted


def download_events(job: str, client, headers) -> int:
    return client.get(f"/api/v1/exports/{job}", headers=headers).json["events"]
