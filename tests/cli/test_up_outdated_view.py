"""`up` over a presence view built before the rule of when a room's archive begins: the view is rebuilt from the
log in its own thread while the listener captures, the projections follow (the old presence view too) and the API
answers (at 10M events the rebuild takes tens of seconds, and `up` captured nothing meanwhile); a stop during the
rebuild ends `up` without waiting for it, leaving the old view live, and the next start rebuilds it.

The rebuild holds the purge lease, as every rebuild of the views does: the test holds it the whole time `up`
runs (a purge running in another process), which keeps the rebuild from finishing for as long as the test needs,
on a log of a test's size."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import uuid

from archive import events as ev
from chat_archive.bootstrap import followed_view
from chat_archive.config import load_config
from chat_archive.views_lease import purge_lease
from projections.viewdb_backends import default_views_url
from projections.views import Views
from tests.cli.test_events_commands import run_cli
from tests.cli.test_presence_upgrade import _as_built_before_the_rule
from tests.cli.test_up_resilience import CLI, config_file
from tests.ingest.helpers import archived_stanza_ids, room_events
from tests.services.prosody import unique_room, wait_for
from tests.factories import at, make, message

OLD_ROOM = "lobby@conference.localhost"


def _outdated_view_over_a_log(event_store, store_url, tmp_path) -> None:
    event_store.append([
        make(ev.RoomDiscovered, 0, occurred_at=at(0), recorded_at=at(0)),
        make(ev.OccupantJoined, 0, nick="alice", occurred_at=at(0), recorded_at=at(0)),
        *[message(t, body=f"old {t}") for t in range(1, 50)],
    ])  # fmt: skip
    assert run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path).returncode == 0
    _as_built_before_the_rule(store_url, event_store)


def _views(store_url, event_store) -> Views:
    return Views(default_views_url(store_url), event_store)


def test_up_captures_and_answers_while_an_outdated_view_is_rebuilt_and_stops_without_waiting(
    prosody, people, event_store, store_url, tmp_path
):
    _outdated_view_over_a_log(event_store, store_url, tmp_path)
    room = unique_room(prosody, f"rb{uuid.uuid4().hex[:6]}")
    people["alice"].create_room(room, "alice")
    config = config_file(tmp_path / "up.toml", prosody, store_url, room)
    with purge_lease(event_store):  # a purge runs in another process: the rebuild waits for it
        process = subprocess.Popen([CLI, "--config", str(config), "up", "--port", "0"], text=True,
                                   stdout=subprocess.PIPE, stderr=open(tmp_path / "up.log", "w"))  # fmt: skip
        try:
            assert re.search(r"on (http://\S+)/", process.stdout.readline() or ""), (tmp_path / "up.log").read_text()
            wait_for(lambda: any(isinstance(e, ev.OccupantJoined) for e in room_events(event_store, room)), 30,
                     message="the listener to join the room")
            said = people["alice"].say(room, "while the view is rebuilt")
            wait_for(lambda: said["stanza_id"] in archived_stanza_ids(event_store, room), 30,
                     message="the live message archived")
            with _views(store_url, event_store) as views:
                wait_for(lambda: [line.body for line in views.transcripts.page(room, limit=10).lines
                                  if line.kind == "message"] == ["while the view is rebuilt"], 30,
                         message="the transcripts view following the log meanwhile")
                live = next(e for e in room_events(event_store, room) if isinstance(e, ev.MessagePosted))
                # The old presence view, followed meanwhile: the new room begins in it as by this program's rules.
                wait_for(lambda: views.presence.occupants_at(room, live.recorded_at,
                                                             known_until=views.known_until()).known, 30,
                         message="the old presence view following the log meanwhile")
                assert "presence" in views.outdated(), "the old view stays live until the rebuild is done"
                assert not views.presence.occupants_at(OLD_ROOM, at(10)).known, "where it was built by older rules"
        finally:
            process.send_signal(signal.SIGTERM)
            returned = process.wait(timeout=30)
        log = (tmp_path / "up.log").read_text()
        assert returned == 0 and "Traceback" not in log, log[-3000:]
        assert "waits for a purge to rebuild it" in log, log[-3000:]
        with _views(store_url, event_store) as views:
            assert "presence" in views.outdated(), "a stopped rebuild leaves the old view in place"
    again = run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path)
    assert again.returncode == 0 and "rebuilding it from the log" in again.stderr, again.stderr
    with _views(store_url, event_store) as views:
        assert not views.outdated()
        assert views.presence.occupants_at(room, live.recorded_at).known


def test_a_rebuild_stopped_while_it_reads_the_log_leaves_the_old_view(event_store, store_url, tmp_path):
    _outdated_view_over_a_log(event_store, store_url, tmp_path)
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
    stop = threading.Event()
    stop.set()  # before the first page is applied: the rebuild stops after it
    with _views(store_url, event_store) as views:
        generations = views.recorder.generations("presence")
        assert followed_view(config, event_store, views, "presence", stop) is None
        assert views.outdated() and views.recorder.generations("presence") == generations, "the old view, alone"
        with purge_lease(event_store):
            pass  # released: a purge may run
        assert followed_view(config, event_store, views, "presence").name == "presence"
        assert not views.outdated()
