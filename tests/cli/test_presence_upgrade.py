"""A presence view built before the rule of when a room's archive begins holds no room's beginning: the
next projection runner on it rebuilds it from the log before following it (in the view's thread, see
test_up_outdated_view). (Such a view answered presence before the archive began as known; read with the
rule, every room in it is "not reached".)"""

from __future__ import annotations

from datetime import timedelta

from archive import events as ev
from projections.presence.logic import EARLIEST
from projections.tables import micros
from projections.viewdb_backends import default_views_url
from projections.views import Views
from tests.cli.test_events_commands import run_cli
from tests.cli.test_projection_runners import ROOM, running_runner
from tests.factories import at, make, message
from tests.projections.old_rules import as_built_by_rules, written_as_before
from tests.services.prosody import wait_for

BEGAN = at(0)
BEFORE = BEGAN - timedelta(hours=1)


def _as_built_before_the_rule(store_url: str, event_store) -> None:
    """As an older chat-archive built it: no room's beginning, and no version of its rules recorded."""
    with Views(default_views_url(store_url), event_store) as views:
        as_built_by_rules(views, "presence", None)
        written_as_before(views, "presence", "DELETE FROM {gaps} WHERE start_ts=?", [(micros(EARLIEST),)])


def _outdated(store_url: str, event_store) -> dict[str, str]:
    with Views(default_views_url(store_url), event_store) as views:
        return views.outdated()


def _before_and_after(store_url: str, event_store):
    with Views(default_views_url(store_url), event_store) as views:
        return views.presence.occupants_at(ROOM, BEFORE), views.presence.occupants_at(ROOM, BEGAN + timedelta(minutes=1))


def test_a_runner_rebuilds_a_presence_view_built_before_room_beginnings(event_store, store_url, tmp_path):
    event_store.append([
        make(ev.RoomDiscovered, 0, occurred_at=BEGAN, recorded_at=BEGAN),
        make(ev.OccupantJoined, 0, nick="alice", occurred_at=BEGAN, recorded_at=BEGAN),
        message(1, body="hello"),
    ])  # fmt: skip
    assert run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path).returncode == 0
    for start in ("once", "following"):
        _as_built_before_the_rule(store_url, event_store)
        before, after = _before_and_after(store_url, event_store)
        assert not before.known and "not reached" in before.gap.explanation, "an old view's answer is not trusted"
        if start == "once":
            result = run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path)
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
            assert "rebuilding it from the log" in result.stderr, result.stderr
        else:
            with running_runner(store_url, tmp_path):  # rebuilt in the view's thread, while the runner runs
                wait_for(lambda: not _outdated(store_url, event_store), 30, message="the runner to rebuild the view")
        before, after = _before_and_after(store_url, event_store)
        assert not before.known and before.gap.kind == "before_archive" and before.gap.end == BEGAN, start
        assert after.known and [o.nick for o in after.occupants] == ["alice"], start
