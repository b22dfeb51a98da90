"""Views built by older rules that this program can still load (every view made before rules were recorded counts as
rules 1): the projections' start keeps following the log with the old live view while its rebuild runs in a thread
of its own, and swaps the rebuilt one in under the follower, which goes on from it. The transcript view, the
presence view and the widget's feed (which waits for the presence view) are not frozen for the rebuild's minutes;
`status` says which view is being rebuilt and why. The rebuild waits for a purge the test holds the lease of, long
enough to look at the views meanwhile. Both stores."""

from __future__ import annotations

import threading

from archive import events as ev
from chat_archive import bootstrap
from chat_archive.bootstrap import projection_status, start_projections
from chat_archive.config import load_config
from chat_archive.views_lease import purge_lease
from projections.viewdb_backends import default_views_url
from projections.views import Views
from query_api.web import widget_feed
from tests.factories import make, message
from tests.projections.conftest import catch_up
from tests.projections.old_rules import as_built_by_rules
from tests.services.prosody import wait_for

LOBBY = "lobby@conference.localhost"
SECRET = b"the feed's key"
FOLLOWED_WITHIN = 10  # seconds: a commit interval of 0.1 s, on a loaded machine


def bodies(views: Views) -> list[str]:
    return [line.body for line in views.transcripts.page(LOBBY).lines if line.kind == "message"]


def fed(views: Views, cursor: dict) -> list[str]:
    items, _ = widget_feed.since(views.transcripts, LOBBY, cursor, presence=views.presence, secret=SECRET)
    return [item["body"] for item in items if item["kind"] == "message"]


def test_an_outdated_view_is_followed_while_it_is_rebuilt_then_the_rebuilt_one_is(event_store, store_url, monkeypatch):
    event_store.append([make(ev.OccupantJoined, 0, nick="alice", occupant_id="a"),
                        message(1, "one", occupant_id="a"), message(2, "two", occupant_id="a")])
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url, "CHAT_ARCHIVE_PROJECTIONS_COMMIT_INTERVAL": "0.1"})
    monkeypatch.setattr(bootstrap, "PURGE_LEASE_TTL", 0.6)  # the rebuild tries the lease again every 0.1 s
    stop, threads = threading.Event(), None
    with Views(default_views_url(store_url), event_store) as views:  # an API host's
        catch_up(event_store, views)
        as_built_by_rules(views, "transcripts", None)  # made before rules were recorded: rules 1
        as_built_by_rules(views, "presence", 1)
        old = {name: views.recorder.generations(name)[0] for name in ("transcripts", "presence")}
        assert sorted(views.outdated()) == ["presence", "transcripts"]
        _, cursor = widget_feed.recent(views.transcripts, LOBBY, presence=views.presence, secret=SECRET)
        try:
            with purge_lease(event_store):  # a purge runs in another process: the rebuilds wait for it
                threads = start_projections(config, event_store, stop)
                event_store.append([message(3, "while rebuilt", occupant_id="a")])
                wait_for(lambda: "while rebuilt" in bodies(views), FOLLOWED_WITHIN,
                         message="the old transcript view following the log meanwhile")
                wait_for(lambda: fed(views, cursor) == ["while rebuilt"], FOLLOWED_WITHIN,
                         message="the widget's feed, which waits for the presence view, meanwhile")
                assert sorted(views.outdated()) == ["presence", "transcripts"]
                assert {name: views.recorder.generations(name)[0] for name in old} == old, "the old views, followed"
                shown = {s.name: s.rebuilding for s in projection_status(config, event_store)}
                for name in ("transcripts", "presence"):
                    assert shown[name] and f"the {name} view was built by rules 1" in shown[name], shown
                assert shown["search"] is None
            wait_for(lambda: not views.outdated(), 30, message="the views rebuilt once the purge is done")
            assert all(views.recorder.generations(name)[0] != generation for name, generation in old.items())
            assert {s.name: s.rebuilding for s in projection_status(config, event_store)}["transcripts"] is None
            event_store.append([message(4, "after", occupant_id="a")])
            wait_for(lambda: bodies(views) == ["one", "two", "while rebuilt", "after"], FOLLOWED_WITHIN,
                     message="the rebuilt view followed, each message once")
            wait_for(lambda: fed(views, cursor) == ["while rebuilt", "after"], FOLLOWED_WITHIN,
                     message="the feed from the rebuilt views")
            head = event_store.head()
            wait_for(lambda: all(p.position() == head for p in views.projections(load=False)), FOLLOWED_WITHIN,
                     message="both rebuilt views at the log's head")
        finally:
            stop.set()
            if threads is not None:
                threads.join()  # raises if a projection failed
