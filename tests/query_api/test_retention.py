"""Purge end to end on both stores: holds placed and released through the API, the purge run as `up` and
`purge` run it, and nothing purged found afterwards by any endpoint, the search index included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from archive.application import open_event_store
from archive.integrity import verify_integrity
from archive.settings import RetentionSettings
from chat_archive.bootstrap import open_search_index, rebuild_projections
from chat_archive.purges import purge_expired
from tests.factories import message

from .conftest import LOBBY, SECRET, seed_events
from .purge_setup import RECENT, found, setup  # noqa: F401 (setup: a fixture)


def test_hold_blocks_purge_release_lets_it_delete_and_nothing_purged_is_found(setup):
    config, store, client, compliance, search = setup
    placed = client.post(f"/api/v1/holds?case=Acme&room={LOBBY}", headers=compliance)
    assert placed.status_code == 201, placed.get_data(as_text=True)
    hold_id = placed.json["hold_id"]
    assert [h["case"] for h in client.get("/api/v1/holds", headers=compliance).json["holds"]] == ["Acme"]

    record = purge_expired(config, store, by="test")
    assert {span.stream for span in record.spans} == {SECRET, "public@conference.localhost"}
    secret_now = found(client, compliance, SECRET)
    assert secret_now == {"search": [LOBBY], "transcript": [], "events": 0, "export": 0, "log": 0}
    assert found(client, compliance, LOBBY)["transcript"] == ["hello from lobby", "fixed in lobby", "oops lobby secret", RECENT]

    released = client.post(f"/api/v1/holds/{hold_id}/release?reason=settled", headers=compliance)
    assert released.status_code == 200 and client.get("/api/v1/holds", headers=compliance).json["holds"] == []
    purge_expired(config, store, by="test")
    time.sleep(search.reload_interval)  # readers see a swapped index within their reload interval
    lobby = found(client, compliance, LOBBY)
    assert lobby["transcript"] == [RECENT] and lobby["search"] == [] and lobby["events"] == 1
    index_files = [f for f in Path(config.index.path).rglob("*") if f.is_file()]
    assert index_files and not [f for f in index_files if b"typo" in f.read_bytes()]  # no old generation kept
    from .web.test_pages import sign_in

    browser = client.application.test_client()
    assert sign_in(browser, compliance["Authorization"].split()[1]).status_code == 303
    for page in ("/?q=hello+OR+typo+OR+fixed+OR+oops", f"/rooms/{LOBBY}?day=2024-05-01"):
        shown = browser.get(page)
        assert shown.status_code == 200 and "lobby" in shown.text and "hello from lobby" not in shown.text
        assert "typo in lobby" not in shown.text and "fixed in lobby" not in shown.text
    from projections.search import Scope

    assert search.search("hello OR typo OR fixed OR oops", Scope(rooms=None, compliance=True)).total == 0
    assert search.search("retention", Scope(rooms=None, compliance=True)).total == 1
    report = verify_integrity(store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]
    if config.store.url.startswith("sqlite"):  # the files themselves, still open: the store's and the views'
        files = list(Path(config.store.url.removeprefix("sqlite:///")).parent.glob("*.sqlite*"))
        assert len([f for f in files if f.suffix == ".sqlite"]) == 2
        assert not [f for f in files if b"typo in lobby" in f.read_bytes()]


def test_a_purge_keeps_the_moderation_and_correction_of_a_held_message_that_came_after_the_hold(setup):
    """Two holds on the lobby end just before a correction (at 21 s) and a moderation (at 31 s) of the messages
    they hold: the purge deleted both, and the rebuilt views showed "typo" uncorrected and "oops" never removed,
    with no record of who removed it. A hold keeps whole messages."""
    config, store, client, compliance, _ = setup
    for window in ("to=2024-05-01T12:00:21Z", "from=2024-05-01T12:00:30Z&to=2024-05-01T12:00:31Z"):
        assert client.post(f"/api/v1/holds?case=Acme&room={LOBBY}&{window}", headers=compliance).status_code == 201
    purge_expired(config, store, by="test")
    lines = client.get(f"/api/v1/rooms/{LOBBY}/transcript?from=2024-01-01", headers=compliance).json["lines"]
    messages = {line["body"]: line for line in lines if line["kind"] == "message"}
    assert sorted(messages) == sorted(["hello from lobby", "fixed in lobby", "oops lobby secret", RECENT])
    assert [v["body"] for v in messages["fixed in lobby"]["versions"]] == ["typo in lobby"]
    assert messages["oops lobby secret"]["removed"]["by_jid"] == "bob@localhost/phone"
    assert verify_integrity(store).ok


def test_a_purge_without_holds_keeps_a_message_whole_while_any_of_its_events_is_younger_than_the_cutoff(setup):
    """No hold in force: a purge deleted a bot's message and kept its correction two days younger; rebuilt, the
    views applied the correction to the next message reusing its id (clients reuse ids), which then read "old
    msg corrected", edited; an author's retraction of a reused origin-id removed the later message likewise.
    Every view changed with no event saying so. A message's events expire together, with the youngest."""
    from datetime import timedelta

    from archive import events as ev
    from archive.times import utcnow
    from tests.factories import make

    config, store, client, compliance, _ = setup
    bots, bot, ann = "bots@conference.localhost", "bot@localhost/x", "ann@localhost/pc"
    now = utcnow()

    def ago(days):
        return {"room": bots, "occurred_at": now - timedelta(days=days)}

    store.append([
        message(0, "gone for good", "bot", "b0", jid=bot, message_id="0", **ago(40)),  # its group all expired: deleted
        make(ev.MessageCorrected, nick="bot", jid=bot, replaces_id="0", body="gone, corrected", **ago(39)),
        message(0, "old msg", "bot", "b1", jid=bot, message_id="1", **ago(31)),  # expired: kept for its correction
        make(ev.MessageCorrected, nick="bot", jid=bot, replaces_id="1", body="old msg corrected", **ago(29)),
        message(0, "new msg", "bot", "b2", jid=bot, message_id="1", **ago(6)),  # reuses the id
        message(0, "ann's slip", "ann", "a1", jid=ann, origin_id="o2", **ago(31)),
        make(ev.MessageRetracted, target_id="o2", by_nick="ann", by_jid=ann, **ago(29)),
        message(0, "ann again", "ann", "a2", jid=ann, origin_id="o2", **ago(6)),  # reuses the origin-id
    ])  # fmt: skip
    rebuild_projections(config, store, ["transcripts"], progress=False)

    def transcript():
        answer = client.get(f"/api/v1/rooms/{bots}/transcript?from=2024-01-01", headers=compliance)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return [line for line in answer.json["lines"] if line["kind"] == "message"]

    before = transcript()
    assert [line["body"] for line in before] == ["gone, corrected", "old msg corrected", "ann's slip", "new msg",
                                                 "ann again"]
    record = purge_expired(config, store, by="test")
    assert transcript() == before[1:]  # each kept message as it was: "new msg" uncorrected, "ann again" not removed
    assert sum(s.last - s.first + 1 for s in record.spans if s.stream == bots) == 2  # the first message, its correction
    report = verify_integrity(store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]


def test_a_refused_correction_or_retraction_keeps_no_message_from_its_purge(setup):
    """Anyone in a room could keep any message from ever being purged: mallory's correction of ann's 400-day-old
    message (refused: not hers, a line of her own) or her retraction of another (refused: nothing), sent
    yesterday, kept it past its retention, and again every year she repeated them, the purge record saying
    "messages kept whole". What the model refused is no part of the message: ann's messages expire; mallory's
    line expires by its own date (her 40-day-old correction of a held message goes, the message stays); ann's own
    younger correction still keeps hers whole. The rebuilt views are the old ones less what expired, but that
    what mallory sent now names a message the archive no longer holds, as had it never been archived."""
    from datetime import timedelta

    from archive import events as ev
    from archive.times import utcnow
    from tests.factories import make

    config, store, client, compliance, search = setup
    room, ann, mallory, cara = "commons@conference.localhost", "ann@localhost/pc", "mallory@localhost/x", "cara@localhost/x"
    now = utcnow()

    def ago(days):
        return {"room": room, "occurred_at": now - timedelta(days=days)}

    store.append([
        message(0, "ann's old words", "ann", "s1", jid=ann, **ago(400)),  # expired: nothing ann did keeps it
        make(ev.MessageCorrected, nick="mallory", jid=mallory, replaces_id="s1", body="mallory's words", **ago(1)),
        message(0, "ann's gone words", "ann", "s4", jid=ann, **ago(400)),  # expired too
        make(ev.MessageRetracted, target_id="s4", by_nick="mallory", by_jid=mallory, **ago(1)),  # refused
        message(0, "cara's held words", "cara", "s2", jid=cara, **ago(400)),  # held
        make(ev.MessageCorrected, nick="mallory", jid=mallory, replaces_id="s2", body="mallory's old", **ago(40)),
        message(0, "ann's typo", "ann", "s3", jid=ann, **ago(400)),
        make(ev.MessageCorrected, nick="ann", jid=ann, replaces_id="s3", body="ann's fix", **ago(1)),  # keeps s3
    ])  # fmt: skip
    assert client.post("/api/v1/holds?case=Acme&jid=cara@localhost", headers=compliance).status_code == 201
    rebuild_projections(config, store, ["transcripts", "search"], progress=False)

    def transcript():
        answer = client.get(f"/api/v1/rooms/{room}/transcript?from=2000-01-01", headers=compliance)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.json["lines"]

    def searched(words):
        return [hit["body"] for hit in client.get(f"/api/v1/search?q={words}", headers=compliance).json["hits"]]

    before = {line["body"]: line for line in transcript()}
    assert sorted(before) == sorted(["ann's old words", "mallory's words", "ann's gone words", "cara's held words",
                                     "mallory's old", "ann's fix"])
    assert before["mallory's words"]["corrects"] == "s1" and "awaiting" not in before["mallory's words"]
    record = purge_expired(config, store, by="test")
    assert sum(s.last - s.first + 1 for s in record.spans if s.stream == room) == 3  # ann's s1 and s4, mallory's old
    after = transcript()
    (removal,) = [line for line in after if line["kind"] == "retraction"]  # compliance: of a message not held
    assert removal["removed"]["by_jid"] == mallory and removal["awaiting"] == "s4"
    expected = {body: line for body, line in before.items()
                if body not in ("ann's old words", "ann's gone words", "mallory's old")}
    expected["mallory's words"] = {**expected["mallory's words"], "awaiting": "s1"}  # its message no longer held
    assert {line["body"]: line for line in after if line["kind"] == "message"} == expected
    assert expected["ann's fix"]["versions"][0]["body"] == "ann's typo"
    time.sleep(search.reload_interval)  # readers see a swapped index within their reload interval
    assert searched("old OR gone") == [] and searched("mallory") == ["mallory's words"]
    report = verify_integrity(store)
    assert report.ok, [str(s.broken) for s in report.streams if s.broken]


def test_holds_need_the_compliance_role_and_valid_input(setup):
    config, store, client, compliance, _ = setup
    assert client.post("/api/v1/holds?case=x").status_code == 401
    assert client.post("/api/v1/holds", headers=compliance).status_code == 400
    assert client.post("/api/v1/holds?case=x&from=2024-05-02&to=2024-05-01", headers=compliance).status_code == 400
    assert client.post("/api/v1/holds/nope/release", headers=compliance).status_code == 404
    bare = client.post("/api/v1/holds?case=x&room=lobby", headers=compliance)
    assert bare.status_code == 400 and "by JID or glob" in bare.json["error"]["message"]
    assert client.get("/api/v1/holds", headers=compliance).json["holds"] == []


def test_hold_and_purge_from_the_command_line(tmp_path, capsys):
    from chat_archive.cli import main

    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        store.append(seed_events())
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{url}"\n[index]\npath = "{tmp_path}/index"\n'
                      f'[retention]\ndefault_days = 3650\n[retention.rooms]\n"{SECRET}" = 1\n')
    args = ["--config", str(config)]
    assert main([*args, "rebuild", "all", "--quiet"]) == 0
    assert main([*args, "hold", "place", "--case", "Acme", "--jid", "alice@localhost"]) == 0
    hold_id = capsys.readouterr().out.split()[1]
    # Events whose author the room did not reveal are kept by a hold on a person: it errs on keeping. So is bob's
    # moderation of a message it keeps ("oops"): a hold keeps whole messages.
    assert main([*args, "purge", "--dry-run"]) == 0
    assert "would delete 4 events from 1 room " in capsys.readouterr().out
    assert main([*args, "purge"]) == 0
    assert "deleted 4 events" in capsys.readouterr().out
    assert main([*args, "hold", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["case"] == "Acme"
    assert main([*args, "hold", "release", hold_id, "--reason", "done"]) == 0
    assert main([*args, "purge"]) == 0
    assert "deleted 7 events" in capsys.readouterr().out
    assert main([*args, "verify", "--integrity"]) == 0
    assert main([*args, "hold", "release", hold_id]) == 1


def test_up_purges_on_a_schedule_and_not_without_a_retention_period(setup):
    import threading
    import time

    import msgspec

    from archive.events import EventsPurged
    from archive.integrity import compliance_records
    from chat_archive.purges import start_purges

    config, store, client, compliance, _ = setup
    assert start_purges(msgspec.structs.replace(config, retention=RetentionSettings()), store, threading.Event()) is None
    stop = threading.Event()
    purges = start_purges(config, store, stop)
    try:
        deadline = time.monotonic() + 60
        while not list(compliance_records(store, EventsPurged)):
            assert purges.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        purges.join()
    assert found(client, compliance, SECRET)["transcript"] == []


@pytest.mark.parametrize("setup", ["sqlite"], indirect=True)  # PostgreSQL has no log the store can empty
def test_a_reader_holding_the_stores_log_fails_the_purge_after_the_rebuild_and_the_next_purge_erases(setup, monkeypatch):
    """Erasing the write-ahead log's copies comes last: a purge failed by it has rebuilt what reads show
    (the next purge finds nothing to delete, so nothing else would rebuild them), and that next purge
    empties the log the failed one could not."""
    import sqlite3

    from archive import sqlite_files
    from archive.errors import StoreUnavailable

    config, store, client, compliance, search = setup
    monkeypatch.setattr(sqlite_files, "ERASE_WAIT_SECONDS", 0.2)
    path = Path(config.store.url.removeprefix("sqlite:///"))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM archive_rooms").fetchone()  # a snapshot: the log cannot be emptied
    try:
        with pytest.raises(StoreUnavailable, match="write-ahead log"):
            purge_expired(config, store, by="test")
    finally:
        reader.close()
    time.sleep(search.reload_interval)
    assert found(client, compliance, SECRET) == {"search": [], "transcript": [], "events": 0, "export": 0, "log": 0}
    assert b"typo in secret" in Path(f"{path}-wal").read_bytes()  # what the failed erase left
    assert purge_expired(config, store, by="test") is None  # nothing more to delete; the log emptied
    assert not [f for f in path.parent.glob("*.sqlite*") if b"typo in secret" in f.read_bytes()]


def test_one_purge_at_a_time_on_a_store_and_up_skips_its_turn_meanwhile(setup):
    """Another process purging (its lease held): a second purge is refused before it deletes anything, naming
    the holder; `up`'s scheduled purge skips that turn instead of stopping `up`."""
    import threading

    from archive.lease import LeaseHeld, StoreLease
    from chat_archive.purges import start_purges

    config, store, client, compliance, _ = setup
    other = StoreLease(store, "purge")
    other.acquire()
    try:
        with pytest.raises(LeaseHeld, match=r"purge lease is held by .* pid"):
            purge_expired(config, store, by="test")
        stop = threading.Event()
        stop.set()  # the purge at start, and no other
        purges = start_purges(config, store, stop)
        purges.join()  # raises what stopped it: nothing
        assert list(store.read_room(SECRET))  # nothing deleted
    finally:
        other.release()
    assert purge_expired(config, store, by="test") is not None
    assert not list(store.read_room(SECRET))


def test_a_purge_reaches_the_search_index_of_every_api_host(setup, tmp_path):
    """Scale-out (docs/DEPLOY.md): every API host keeps a search index of its own, following the shared log. The
    purge rebuilds its own host's index; each other host's indexer, reading the purge_applied record, rebuilds its
    own, the messages arriving meanwhile included."""
    import threading

    import msgspec

    from archive.times import utcnow
    from chat_archive.bootstrap import start_search_indexer
    from projections.search import Scope

    config, store, client, compliance, search = setup
    everything = Scope(rooms=None, compliance=True)
    host_b = msgspec.structs.replace(config, index=msgspec.structs.replace(
        config.index, path=str(tmp_path / "host-b-index"), commit_interval=0.05))
    stop = threading.Event()
    indexer = start_search_indexer(host_b, store, stop)
    try:
        index_b = open_search_index(host_b)
        deadline = time.monotonic() + 30
        while index_b.search("typo", everything).total == 0:  # caught up: what the purge will delete is found
            assert time.monotonic() < deadline and indexer.is_alive()
            time.sleep(0.05)
        purge_expired(config, store, by="test")
        for n in range(5):
            store.append([message(1000 + n, f"aftermath {n}", "alice", room=LOBBY, occurred_at=utcnow())])
        deadline = time.monotonic() + 60
        while index_b.search("typo OR hello OR fixed OR oops", everything).total:
            assert time.monotonic() < deadline and indexer.is_alive()
            time.sleep(0.05)
        while index_b.search("aftermath", everything).total < 5:
            assert time.monotonic() < deadline and indexer.is_alive()
            time.sleep(0.05)
        assert index_b.search("retention", everything).total == 1

        def purged_text_on_disk():
            try:
                return [f for f in (tmp_path / "host-b-index").rglob("*") if f.is_file() and b"typo" in f.read_bytes()]
            except FileNotFoundError:
                return ["a generation being dropped"]  # look again

        while purged_text_on_disk():  # the replaced generation is dropped right after the swap
            assert time.monotonic() < deadline and indexer.is_alive()
            time.sleep(0.05)
    finally:
        stop.set()
        indexer.join(30)


def test_hold_list_shows_hostile_names_escaped_on_one_line(tmp_path, capsys):
    """A hold's rooms (a glob is not a JID), people and placer went to the terminal as they were: a line break
    forged a hold line of its own in a compliance officer's listing, a terminal escape cleared the screen."""
    from archive.retention import place_hold
    from chat_archive.cli import main

    url = f"sqlite:///{tmp_path}/events.sqlite"
    with open_event_store(url) as store:
        place_hold(store, case="Acme\x1b[2J", rooms=("lobby*\nfeedface0000  case 'Other'  rooms all",),
                   by="eve\r\nforged\u202e")
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "{url}"\n')
    assert main(["--config", str(config), "hold", "list"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert "\x1b" not in line and "\u202e" not in line and "\r" not in line
    assert "lobby*\\x0afeedface0000" in line and "by eve\\x0d\\x0aforged\\u202e" in line
