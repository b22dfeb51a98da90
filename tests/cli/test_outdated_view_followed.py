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
from projections.follower import LogFollower
from projections.viewdb_backends import default_views_url
from projections.views import Views
from query_api.web import widget_feed
from tests.cli.test_presence_upgrade import _as_built_before_the_rule
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
        # As an older chat-archive left them, no version of their rules recorded: transcripts count as rules 1, and
        # presence, holding no room's beginning, too (following it gives a room one: not then counted as rules 2).
        as_built_by_rules(views, "transcripts", None)
        _as_built_before_the_rule(store_url, event_store)
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


def test_a_follower_goes_on_from_the_view_swapped_in_under_it_though_the_log_is_quiet(event_store, store_url):
    """A rebuild reads the log to its end, then swaps in: what was appended in between is in neither the rebuilt
    view nor, once the swap is seen, anything the follower commits. It saw the swap only at its next commit, i.e.
    after the next event: on a quiet log the view stayed behind its head. Told of the swap, it goes on from the
    rebuilt view's position at once (``LogFollower.replaced``)."""
    from projections.runner import ProjectionThreads

    event_store.append([message(t, f"m{t}") for t in range(1, 6)])
    head = event_store.head()
    records = list(event_store.read_log(0))
    stop = threading.Event()
    with Views(default_views_url(store_url), event_store) as views:
        catch_up(event_store, views, ["transcripts"])

        def replace() -> bool:
            """A rebuild that read the log before its last two events were appended."""
            target = views.projections(["transcripts"], load=False)[0]
            fresh = target.begin_rebuild()
            fresh.apply(records[:-2])
            fresh.commit(records[-3].position)
            target.finish_rebuild(fresh)
            return True

        old = views.recorder.generations("transcripts")[0]
        threads = ProjectionThreads(event_store, [(views.projections(["transcripts"])[0], 0.1)], stop, replacing=[("transcripts", replace)])
        try:
            wait_for(lambda: views.recorder.generations("transcripts")[0] != old, FOLLOWED_WITHIN, message="the swap")
            wait_for(lambda: views.projections(["transcripts"], load=False)[0].position() == head, FOLLOWED_WITHIN,
                     message="the rebuilt view at the log's head, with no event appended since")
            assert bodies(views) == [f"m{t}" for t in range(1, 6)]
        finally:
            stop.set()
            threads.join()


def test_a_follower_reading_the_view_swapped_out_under_it_resumes_on_the_live_one(event_store, store_url):
    """A rebuild swaps in between the follower's pages, before the follower is told (``replaced``): its next page
    looks up the message a correction names in the tables the swap dropped. On PostgreSQL that was a plain
    StoreError, which ended the follower's thread and with it `up` (listener, API and all); it is a transient
    like SQLite's "no such table": the follower resumes from the live view's commit (reviewer)."""
    event_store.append([make(ev.OccupantJoined, 0, nick="alice", occupant_id="a"), message(1, "one", occupant_id="a")])
    with Views(default_views_url(store_url), event_store) as views:
        catch_up(event_store, views, ["transcripts"])
        follower = LogFollower(event_store, views.projections(["transcripts"])[0], commit_interval=0.1)
        target = views.projections(["transcripts"], load=False)[0]
        fresh = target.begin_rebuild()
        LogFollower(event_store, fresh, commit_interval=60).catch_up()
        target.finish_rebuild(fresh)
        event_store.append([make(ev.MessageCorrected, 2, nick="alice", occupant_id="a", replaces_id="sid-1-alice",
                                 body="fixed", stanza_id="c2")])
        stop = threading.Event()
        thread = threading.Thread(target=follower.run, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: bodies(views) == ["fixed"] or not thread.is_alive(), FOLLOWED_WITHIN, message="the fix")
            assert thread.is_alive() and bodies(views) == ["fixed"]
        finally:
            stop.set()
            thread.join()
