"""`chat-archive import` and `chat-archive transcript`, run as real processes on both stores."""

from __future__ import annotations

import hashlib
import json

from archive.application import open_event_store
from archive.codec import event_from_builtins
from projections.follower import LogFollower
from projections.viewdb_backends import default_views_url
from projections.views import Views
from tests.cli.test_events_commands import run_cli

ROOM = "r@conference.localhost"


def _event(kind, second, **fields) -> dict:
    t = f"2024-05-01T12:00:{second:02d}Z"
    return {"type": kind, "room": ROOM, "occurred_at": t, "recorded_at": t, **fields}


HISTORY = [
    _event("occupant_joined", 0, nick="alice", occupant_id="oa"),
    _event("message_posted", 1, nick="alice", body="helo", stanza_id="s1", message_id="m1", occupant_id="oa"),
    _event("message_corrected", 2, nick="alice", replaces_id="m1", body="hello", stanza_id="s2", occupant_id="oa"),
    _event("message_posted", 3, nick="bob", body="my password is hunter2", stanza_id="s3"),
    _event("message_retracted", 4, target_id="s3", moderated=True, by_nick="alice", reason="secret"),
    _event("message_retracted", 5, target_id="never-archived", moderated=True, by_nick="alice"),
]


def _archived(store_url: str, events: list[dict]) -> None:
    """``events`` stored, and the transcript and presence views caught up with them."""
    with open_event_store(store_url) as store:
        store.append([event_from_builtins(e) for e in events])
        with Views(default_views_url(store_url), store) as views:
            for projection in views.projections():
                LogFollower(store, projection, commit_interval=60).catch_up()


def _file(tmp_path, lines) -> str:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_import_takes_log_lines_and_bare_events_once_and_moves_a_log(store_url, tmp_path):
    lines = [json.dumps({"position": 7, "event": e}) for e in HISTORY[:3]] + [""] + [json.dumps(e) for e in HISTORY[3:]]
    written = "".join(line + "\n" for line in lines).encode()
    lines.append(json.dumps({"sha256": hashlib.sha256(written).hexdigest(), "count": len(lines)}))  # an export's trailer
    path = _file(tmp_path, lines)
    first = run_cli("import", path, store_url=store_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"imported 6 new events from {path} (0 already archived)"
    again = run_cli("import", path, store_url=store_url)
    assert again.stdout.strip() == f"imported 0 new events from {path} (6 already archived)"
    log = run_cli("log", store_url=store_url).stdout
    # The bare events came from elsewhere: captured by import (the log's lines say how they were captured).
    assert [json.loads(line)["event"] for line in log.splitlines()] == HISTORY[:3] + [
        dict(e, capture="import") for e in HISTORY[3:]]
    # The log moves to another store through standard input, as it was.
    other = f"sqlite:///{tmp_path}/other.sqlite"
    moved = run_cli("import", "-", store_url=other, input=log)
    assert moved.returncode == 0, moved.stderr
    assert run_cli("log", store_url=other).stdout == log


def test_a_bad_line_imports_nothing_and_says_where(store_url, tmp_path):
    lines = [json.dumps(e) for e in HISTORY[:2]] + ['{"type": "message_posted", "room": "r"}']
    result = run_cli("import", _file(tmp_path, lines), store_url=store_url)
    assert result.returncode == 1 and "line 3" in result.stderr and "Traceback" not in result.stderr
    store = open_event_store(store_url)
    assert store.head() == 0
    store.close()
    missing = run_cli("import", str(tmp_path / "nope.jsonl"), store_url=store_url)
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_transcript_prints_what_the_api_serves(store_url):
    _archived(store_url, HISTORY)
    text = run_cli("transcript", ROOM, store_url=store_url)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "[2024-05-01T12:00:00Z] * alice joined",
        "[2024-05-01T12:00:01Z] <alice> hello (edited)",
        "[2024-05-01T12:00:03Z] * a message by bob was removed by alice",
    ]
    lines = [json.loads(line) for line in run_cli("transcript", ROOM, "--json", "--originals",
                                                  store_url=store_url).stdout.splitlines()]
    assert [(line["kind"], line.get("body")) for line in lines] == [
        ("joined", None), ("message", "hello"), ("message", "my password is hunter2"), ("retraction", None),
    ]
    assert lines[1]["versions"][0]["body"] == "helo" and lines[2]["removed"]["reason"] == "secret"
    window = run_cli("transcript", ROOM, "--from", "2024-05-01T12:00:01Z", "--to", "2024-05-01T12:00:02Z",
                     "--json", store_url=store_url)
    assert [json.loads(line)["body"] for line in window.stdout.splitlines()] == ["hello"]
    unknown = run_cli("transcript", "nobody@conference.localhost", store_url=store_url)
    assert unknown.returncode == 1 and "error: no archived room" in unknown.stderr


def test_transcript_text_cannot_be_forged_by_line_breaks_or_control_characters(store_url):
    """As the API's text format: a line break in a body began a forged line of its own, and a terminal escape
    went to the terminal as it was (``\\x1b[2J`` cleared the screen)."""
    forged = _event("message_posted", 1, nick="mallory", body="fine\n[2024-05-01T12:00:40Z] <ceo> wire\x1b[2J",
                    stanza_id="s1")
    _archived(store_url, [forged])
    text = run_cli("transcript", ROOM, store_url=store_url)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "[2024-05-01T12:00:01Z] <mallory> fine", "    [2024-05-01T12:00:40Z] <ceo> wire\\x1b[2J",
    ]


def test_import_refuses_a_room_no_jid_names_and_the_archives_own_streams(store_url, tmp_path):
    """A room name with a line break went in (and every EML and RSMF export of it failed with a traceback), and so
    did a message into the compliance stream (read by no room's view, never purged) or an audit record."""
    for line, bad in [
        (2, _event("message_posted", 1, nick="eve", body="x", room="a\r\nX-Injected: 1@conference.localhost")),
        (2, _event("message_posted", 1, nick="eve", body="x", room="chat-archive:compliance")),
        (2, _event("content_read", 1, room="chat-archive:audit", request_id="r", via="cli", endpoint="search")),
    ]:
        result = run_cli("import", _file(tmp_path, [json.dumps(HISTORY[0]), json.dumps(bad)]), store_url=store_url)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"line {line}: " in result.stderr and "nothing was imported" in result.stderr
    with open_event_store(store_url) as store:
        assert store.head() == 0


def test_import_names_an_archived_room_as_it_is_archived(store_url, tmp_path):
    """A JID is not case-sensitive: an import's Lobby@… created a room beside the archived lobby@…, whose message
    counts /rooms then merged. Its events now go to the archived room, and a room new to the archive is named as
    its first line names it, whatever case its later lines use."""
    _archived(store_url, HISTORY[:1])
    shouted = ROOM.upper()
    lines = [_event("message_posted", 10, nick="bob", body="hi", stanza_id="s10", room=shouted),
             _event("message_posted", 11, nick="bob", body="new", stanza_id="s11", room="New@Conference.localhost"),
             _event("message_posted", 12, nick="bob", body="again", stanza_id="s12", room="new@conference.localhost")]
    result = run_cli("import", _file(tmp_path, [json.dumps(line) for line in lines]), store_url=store_url)
    assert result.returncode == 0, result.stderr
    with open_event_store(store_url) as store:
        assert sorted(store.rooms()) == ["New@Conference.localhost", ROOM]
        assert [r.event.body for r in store.read_room(ROOM) if hasattr(r.event, "body")] == ["hi"]
        assert [r.event.body for r in store.read_room("New@Conference.localhost")] == ["new", "again"]


def test_a_hand_written_event_without_recorded_at_is_recorded_at_its_own_time(store_url, tmp_path):
    """Another archive's export knows when things were said, not when this archive recorded them: an event
    without ``recorded_at`` was refused ("missing required field"). It now takes its ``occurred_at``
    (the same file imports the same events; and an import claims no later knowledge of a room than it has)."""
    bare = {k: v for k, v in HISTORY[1].items() if k != "recorded_at"}
    wrapped = {"position": 3, "event": {k: v for k, v in HISTORY[3].items() if k != "recorded_at"}}
    result = run_cli("import", _file(tmp_path, [json.dumps(bare), json.dumps(wrapped)]), store_url=store_url)
    assert result.returncode == 0, result.stderr
    with open_event_store(store_url) as store:
        stored = [r.event for r in store.read_room(ROOM)]
    assert [e.recorded_at for e in stored] == [e.occurred_at for e in stored] and len(stored) == 2
    neither = {k: v for k, v in bare.items() if k != "occurred_at"}
    refused = run_cli("import", _file(tmp_path, [json.dumps(neither)]), store_url=store_url)
    assert refused.returncode == 1 and "line 1" in refused.stderr and "occurred_at" in refused.stderr


def test_a_line_over_the_size_limit_is_refused_naming_it(store_url, tmp_path):
    """A 20 MB body was imported whole (and made a 20 MB day page): a line of new events is at most
    ``MAX_LINE_BYTES``, refused by its number before anything is imported."""
    from chat_archive.log_file import MAX_LINE_BYTES

    big = _event("message_posted", 9, nick="bob", body="x" * MAX_LINE_BYTES, stanza_id="s9")
    result = run_cli("import", _file(tmp_path, [json.dumps(HISTORY[0]), json.dumps(big)]), store_url=store_url)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "line 2" in result.stderr and "1 MiB" in result.stderr and "nothing was imported" in result.stderr
    with open_event_store(store_url) as store:
        assert store.head() == 0


def test_a_bare_event_without_capture_is_imported_not_live(store_url, tmp_path):
    """A hand-written event (another archive's export) said nothing of how it was captured and went in as
    ``live``: its room's presence then read as known ("nobody was there") where the archive never watched. A
    bare event is captured by ``import`` unless it says otherwise; a line as `log` prints it keeps what it says."""
    bare = {k: v for k, v in HISTORY[1].items() if k != "recorded_at"}
    logged = {"position": 9, "event": HISTORY[3]}
    said = dict(HISTORY[0], capture="backfill")
    result = run_cli("import", _file(tmp_path, [json.dumps(bare), json.dumps(logged), json.dumps(said)]),
                     store_url=store_url)
    assert result.returncode == 0, result.stderr
    with open_event_store(store_url) as store:
        captures = {getattr(r.event, "body", "joined"): r.event.capture.value for r in store.read_room(ROOM)}
    assert captures == {"helo": "import", "my password is hunter2": "live", "joined": "backfill"}


def test_a_backup_is_restored_whatever_its_lines_size(store_url, tmp_path):
    """The line limit is for new events: a backup holds what its store held (a server may allow larger
    stanzas than the limit), and a restore must drop none of it."""
    from chat_archive.log_file import MAX_LINE_BYTES

    big = _event("message_posted", 9, nick="bob", body="x" * MAX_LINE_BYTES, stanza_id="s9")
    with open_event_store(store_url) as store:
        store.append([event_from_builtins(big)])
    backup = str(tmp_path / "backup.jsonl.gz")
    assert run_cli("export-log", backup, store_url=store_url).returncode == 0
    other = f"sqlite:///{tmp_path}/restored.sqlite"
    restored = run_cli("import", backup, store_url=other)
    assert restored.returncode == 0, restored.stderr
    with open_event_store(other) as store:
        assert [len(r.event.body) for r in store.read_room(ROOM)] == [MAX_LINE_BYTES]
