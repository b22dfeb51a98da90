"""A transcript view an older chat-archive made, of an older table layout (before late lines and one-number ref
keys) and with no version of its rules recorded: it counts as rules 1, so the projections' start rebuilds it from the
log in its own thread without loading it (this program cannot read it, and a load is refused), while the other views
follow the log. Until the rebuilt view is swapped in, an API host serving it answers what its layout serves and
says what happens to it where the layout does not, never misreading it; `status` reads its position without loading it. Both stores."""

from __future__ import annotations

import threading

import pytest

from archive import events as ev
from archive.errors import StoreError
from chat_archive import bootstrap
from chat_archive.bootstrap import projection_status, start_projections
from chat_archive.config import load_config
from chat_archive.views_lease import purge_lease
from projections.viewdb_backends import default_views_url
from projections.views import Views
from tests.factories import make, message
from tests.projections.conftest import catch_up
from tests.projections.old_rules import as_made_before_late_lines
from tests.projections.test_viewdb import REBUILT_AT_START
from tests.services.prosody import wait_for

LOBBY = "lobby@conference.localhost"


def positions(views: Views) -> dict[str, int]:
    return {projection.name: projection.position() for projection in views.projections(load=False)}


def messages(views: Views) -> list[str]:
    return [line.body for line in views.transcripts.page(LOBBY).lines if line.kind == "message"]


def test_a_start_rebuilds_a_view_of_an_older_layout_and_its_queries_say_so_until_then(
    event_store, store_url, monkeypatch
):
    event_store.append([message(5, "five"), message(2, "two, late"), message(9, "nine")])
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url, "CHAT_ARCHIVE_PROJECTIONS_COMMIT_INTERVAL": "0.1"})
    # A rebuild waiting for a running purge tries again a tenth of a second later, not ten seconds (``followed_view``).
    monkeypatch.setattr(bootstrap, "PURGE_LEASE_TTL", 0.6)
    stop, threads = threading.Event(), None
    with Views(default_views_url(store_url), event_store) as views:  # an API host's
        catch_up(event_store, views)
        generation = as_made_before_late_lines(views)
        before = event_store.head()
        assert list(views.outdated()) == ["transcripts"]
        assert {s.name: s.position for s in projection_status(config, event_store)} == {
            "transcripts": before, "presence": before}
        try:
            with purge_lease(event_store):  # a purge runs in another process: the rebuild waits for it
                threads = start_projections(config, event_store, stop)
                event_store.append([make(ev.OccupantJoined, 10, nick="alice")])
                wait_for(lambda: positions(views)["presence"] == event_store.head(), 30,
                         message="the presence view following the log meanwhile")
                # Pages read only what both layouts hold; the widget's feed reads ``late``.
                assert messages(views) == ["two, late", "five", "nine"]
                with pytest.raises(StoreError, match=REBUILT_AT_START):
                    views.transcripts.changes(LOBBY)
                assert views.recorder.generations("transcripts")[0] == generation and positions(views)[
                    "transcripts"] == before, "the old view, live and not followed, until the rebuilt one is swapped in"
            wait_for(lambda: not views.outdated(), 30, message="the view rebuilt once the purge is done")
            event_store.append([message(11, "after")])
            wait_for(lambda: [line.body for line in views.transcripts.changes(LOBBY).lines if line.kind == "message"]
                     == ["five", "two, late", "nine", "after"], 30, message="the rebuilt view followed")
        finally:
            stop.set()
            if threads is not None:
                threads.join()  # raises if a projection failed
