"""Each table view records the version of the rules its generation was built by (``TableProjection.rules``): a view
built by older rules (a transcripts view made before removals, versions and gaps carried their evidence, whose
imported moderation reads "live" where the log says "imported") is outdated (``Views.outdated``, saying why), and
`project` / `up` rebuild it from the log as they start, in its own thread, as they did for presence's layout rule.
A view made before versions were recorded counts as version 1, unless its layout says otherwise (presence's room
beginnings)."""

from __future__ import annotations

import msgspec

from archive import events as ev
from chat_archive.bootstrap import followed_view, rebuild_projections
from chat_archive.config import load_config
from projections.lines import stored
from projections.presence.view import PresenceProjection
from projections.tables import TableProjection
from projections.transcripts.view import TranscriptProjection
from projections.viewdb_backends import default_views_url
from projections.views import PROJECTION_CLASSES, Views
from tests.cli.test_events_commands import run_cli
from tests.cli.test_presence_upgrade import _as_built_before_the_rule
from tests.factories import at, make, message
from tests.projections.old_rules import as_built_by_rules, written_as_before

ROOM = "lobby@conference.localhost"
EVIDENCE = [
    message(1, "moderated later", stanza_id="s1"),
    make(ev.MessageRetracted, 2, target_id="s1", moderated=True, by_nick="mod", capture=ev.Capture.IMPORT),
    make(ev.ArchiveGap, 9, gap_start=at(3), gap_end=at(9), kind=ev.GapKind.ALL, explanation="away", recovered=1,
         verified=True),
]  # fmt: skip


def as_the_older_rules_built_it(views: Views) -> None:
    """The lines as the rules before evidence made them: the removal and the gap without what they hold of it."""
    lines = views.transcripts.page(ROOM, include_originals=True).lines
    older = [msgspec.structs.replace(line, removed=line.removed and msgspec.structs.replace(line.removed, capture=None),
                                     gap_recovered=None, gap_verified=False) for line in lines]
    written_as_before(views, "transcripts", "UPDATE {lines} SET fields=? WHERE id=?",
                      [(data, line.id) for data, line in zip(stored(older), older)])


def evidence(views: Views) -> list:
    message_line, gap = views.transcripts.page(ROOM, include_originals=True).lines
    return [message_line.removed.capture, gap.gap_recovered, gap.gap_verified]


def test_a_transcript_view_built_by_older_rules_is_rebuilt_by_project_and_by_a_runner_start(
    event_store, store_url, tmp_path
):
    event_store.append(EVIDENCE)
    assert run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path).returncode == 0
    config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
    with Views(default_views_url(store_url), event_store) as views:
        assert views.outdated() == {}, "a view built by this program's rules is up to date"
        assert evidence(views) == ["import", 1, True]
        for recorded, start in ((None, "project --once"), (1, "a runner's start")):
            as_the_older_rules_built_it(views)
            as_built_by_rules(views, "transcripts", recorded)
            assert evidence(views) == [None, None, False], "what the older rules made: the log says imported"
            why = views.outdated()
            assert list(why) == ["transcripts"], recorded
            assert "built by rules 1" in why["transcripts"] and "captured" in why["transcripts"], why
            generation = views.recorder.generations("transcripts")[0]
            if start == "project --once":
                result = run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path)
                assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
                assert "rebuilding it from the log" in result.stderr, result.stderr
            else:
                assert followed_view(config, event_store, views, "transcripts").name == "transcripts"
            assert views.recorder.generations("transcripts")[0] > generation, start
            assert views.outdated() == {}, start
            assert evidence(views) == ["import", 1, True], start
        # A rebuild from the command line records this program's rules too.
        as_built_by_rules(views, "transcripts", 1)
        rebuild_projections(config, event_store, ["transcripts"], progress=False)
        assert views.outdated() == {}


def test_a_presence_view_is_outdated_by_its_recorded_rules_or_without_them_by_its_layout(
    event_store, store_url, tmp_path
):
    """The layout check of presence is how its version is known where none was recorded: a view holding room
    beginnings was built by rules 2, one that has applied events and holds none by rules 1. A recorded version
    is the one that counts."""
    event_store.append([make(ev.OccupantJoined, 0, nick="alice"), message(1, "hello")])
    assert run_cli("project", "--once", "--no-search", store_url=store_url, cwd=tmp_path).returncode == 0
    with Views(default_views_url(store_url), event_store) as views:
        as_built_by_rules(views, "presence", None)
        assert views.outdated() == {}, "no version recorded, room beginnings held: rules 2"
        as_built_by_rules(views, "presence", 1)
        assert "presence" in views.outdated(), "recorded as rules 1, whatever its tables hold"
    _as_built_before_the_rule(store_url, event_store)
    with Views(default_views_url(store_url), event_store) as views:
        why = views.outdated()
        assert list(why) == ["presence"] and "when a room's archive begins" in why["presence"], why
        config = load_config(environ={"CHAT_ARCHIVE_STORE_URL": store_url})
        assert followed_view(config, event_store, views, "presence").name == "presence"
        assert views.outdated() == {}


def test_every_version_of_the_rules_says_what_it_added():
    for cls in PROJECTION_CLASSES.values():
        assert issubclass(cls, TableProjection)
        assert sorted(cls.rules_added) == list(range(2, cls.rules + 1)), cls.name
    assert TranscriptProjection.rules >= 2 and PresenceProjection.rules >= 2
