"""A ranged transcript read shows every archive gap whose span meets its range (``projections.ranges.gap_meets``),
on SQLite and PostgreSQL: the API (JSON and text), the web day page, the CLI, the exports and /state.

The reviewer's case (MEDIUM): a gap line is placed at the gap's start, and every read filtered ``ts >= start``.
With the listener down from day 1 08:00 to day 3 14:00, the transcript from day 1 10:00 to 12:00, the web page of
day 2 and ``chat-archive transcript --from --to`` showed no gap: the span looked complete and quiet. Such a gap
line comes first in the range, on its first page only (a cursor neither repeats nor loses it, either way)."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from archive import events as ev
from query_api.exports.bundle import ExportRequest, write_bundle
from tests.cli.test_events_commands import run_cli
from tests.factories import make

from .conftest import auth
from .test_export_ranges import _text
from .web.test_pages import sign_in

ROOM = "gaps@conference.localhost"
D1 = datetime(2024, 7, 1, tzinfo=timezone.utc)
GAP_START, GAP_END = D1 + timedelta(hours=8), D1 + timedelta(days=2, hours=14)
MISSING = "the archive may be missing messages until 2024-07-03T14:00:00Z"


def h(hours: float) -> datetime:
    return D1 + timedelta(hours=hours)


def _at(moment: datetime, cls, **fields):
    return make(cls, 0, room=ROOM, occurred_at=moment, recorded_at=moment, **fields)


def history() -> list[ev.Event]:
    backfilled = ev.Capture.BACKFILL
    return [
        _at(h(7), ev.OccupantJoined, nick="alice", jid="alice@localhost/pc"),
        _at(h(7.5), ev.MessagePosted, nick="alice", body="before the gap", stanza_id="s1"),
        _at(h(10.5), ev.MessagePosted, nick="bob", body="recovered one", stanza_id="s2", capture=backfilled),
        _at(h(11), ev.MessagePosted, nick="bob", body="recovered two", stanza_id="s3", capture=backfilled),
        make(ev.ArchiveGap, 0, room=ROOM, occurred_at=GAP_END, recorded_at=GAP_END, gap_start=GAP_START,
             gap_end=GAP_END, kind=ev.GapKind.MESSAGES, explanation="listener down", recovered=2, verified=True),
        _at(GAP_END + timedelta(seconds=5), ev.MessagePosted, nick="alice", body="after the gap", stanza_id="s4"),
        _at(GAP_END + timedelta(hours=1), ev.MessagePosted, nick="alice", body="later", stanza_id="s5"),
    ]  # fmt: skip


@pytest.fixture
def archive(private_seeded):
    private_seeded.store.append(history())
    private_seeded.catch_up()
    return private_seeded


@pytest.fixture
def client(archive, private_app, tokens):
    client = private_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = auth(tokens["compliance"])["Authorization"]
    return client


def what(line: dict) -> str:
    return "gap" if line["kind"] == "gap" else line.get("body") or line["kind"]


def read(client, query: str) -> dict:
    response = client.get(f"/api/v1/rooms/{ROOM}/transcript?{query}")
    assert response.status_code == 200, response.text
    return response.json


def test_a_range_inside_a_gap_begun_before_it_shows_the_gap_first_json_and_text(client):
    page = read(client, "from=2024-07-01T10:00:00Z&to=2024-07-01T12:00:00Z")
    assert [what(line) for line in page["lines"]] == ["gap", "recovered one", "recovered two"]
    gap = page["lines"][0]
    assert (gap["at"], gap["gap_end"], gap["reason"]) == ("2024-07-01T08:00:00Z", "2024-07-03T14:00:00Z", "listener down")
    assert page["next"] is None and page["previous"] is None
    text = client.get(f"/api/v1/rooms/{ROOM}/transcript?from=2024-07-01T10:00:00Z&to=2024-07-01T12:00:00Z"
                      "&format=text").text.splitlines()
    assert text[0].startswith("[2024-07-01T08:00:00Z] * " + MISSING) and "listener down" in text[0]
    assert [line.split("> ")[-1] for line in text[1:]] == ["recovered one", "recovered two"]
    # A day wholly inside the gap: the gap alone, not an empty page.
    assert [what(line) for line in read(client, "day=2024-07-02")["lines"]] == ["gap"]
    # A range the gap ended before, or began after: no gap.
    assert "gap" not in [what(line) for line in read(client, "from=2024-07-03T15:00:00Z")["lines"]]
    assert read(client, "to=2024-07-01T08:00:00Z")["lines"][-1]["body"] == "before the gap"


def test_paging_a_range_shows_the_gap_once_either_way(client):
    """Forward from the range's start, then back from its last page by ``previous``, a line at a time: the gap
    first, once, each line once."""
    expected = ["gap", "recovered one", "recovered two", "after the gap"]
    query = "from=2024-07-01T10:00:00Z&to=2024-07-03T15:00:00Z&limit=1"
    page, seen = read(client, query), []
    while True:
        seen += [what(line) for line in page["lines"]]
        if page["next"] is None:
            break
        page = read(client, f"limit=1&cursor={page['next']}")
    assert seen == expected
    back = []
    while True:
        back[:0] = [what(line) for line in page["lines"]]
        if page["previous"] is None:
            break
        page = read(client, f"limit=1&cursor={page['previous']}")
    assert back == expected
    # Two lines a page, and back from the second page to the first: the same first page.
    first = read(client, query.replace("limit=1", "limit=2"))
    second = read(client, f"limit=2&cursor={first['next']}")
    assert [what(line) for line in second["lines"]] == ["recovered two", "after the gap"]
    again = read(client, f"limit=2&cursor={second['previous']}")
    assert [what(line) for line in again["lines"]] == ["gap", "recovered one"] and again["previous"] is None


def test_a_line_read_around_inside_a_gap_says_so(client, archive):
    """``around``: the window's first line is inside the gap, which began before it: the gap is shown first."""
    target = next(r.position for r in archive.store.read_room(ROOM) if getattr(r.event, "stanza_id", None) == "s3")
    page = read(client, f"around={target}&limit=3")
    assert [what(line) for line in page["lines"]] == ["gap", "recovered one", "recovered two", "after the gap"]
    assert page["target"] == target and page["previous"] is not None
    # The window's own ``previous`` goes on from its first line of the room (not from the gap's), losing nothing.
    earlier = read(client, f"limit=2&cursor={page['previous']}")
    assert [what(line) for line in earlier["lines"]] == ["before the gap", "gap"]


def test_the_web_page_of_a_day_inside_a_gap_shows_the_gap(archive, private_app, tokens):
    client = private_app.test_client()
    sign_in(client, tokens["compliance"])
    page = client.get(f"/rooms/{ROOM}?day=2024-07-02")
    assert page.status_code == 200
    assert "archive gap: " + MISSING in page.text and "listener down" in page.text
    # Dated: the gap began on another day than the page's.
    assert re.search(r'datetime="2024-07-01T08:00:00Z"[^>]*>2024-07-01 08:00', page.text)
    # The calendar's active days are still the days with lines of their own.
    assert re.findall(r'class="active-day" href="[^"]+">(\d+)<', page.text) == ["1", "3"]


def test_the_cli_shows_a_gap_begun_before_its_range(archive):
    result = run_cli("transcript", ROOM, "--from", "2024-07-01T10:00:00Z", "--to", "2024-07-01T12:00:00Z",
                     store_url=archive.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[2024-07-01T08:00:00Z] * " + MISSING) and len(lines) == 3
    inside = run_cli("transcript", ROOM, "--from", "2024-07-02", "--to", "2024-07-03", "--json", store_url=archive.url)
    assert [json.loads(line)["kind"] for line in inside.stdout.splitlines()] == ["gap"]


def test_state_since_a_moment_inside_a_gap_shows_the_gap(archive, client):
    state = client.get(f"/api/v1/rooms/{ROOM}/state?at=2024-07-01T12:00:00Z&since=2024-07-01T10:00:00Z").json
    assert [what(line) for line in state["lines"]] == ["gap", "recovered one", "recovered two"]


def test_a_search_export_says_where_the_archive_may_be_missing_events(archive, tmp_path):
    """Filtered by a query, RSMF and EML dropped every gap line: a search over the gap's days found its messages
    and did not say that others may be missing."""
    def day_one(query: str) -> str:
        path = tmp_path / f"{query}.zip"
        request = ExportRequest(format="eml", rooms=(ROOM,), start=h(10), end=h(12), query=query)
        with open(path, "wb") as out:
            write_bundle(out, request, archive.store, archive.views, archive.search)
        with zipfile.ZipFile(path) as zf:
            return _text(zf.read(f"eml/{ROOM}/2024-07-01.eml"))

    text = day_one("recovered")
    assert MISSING in text and "recovered one" in text and "before the gap" not in text
    # Nothing found in the range: that the archive may be missing what would have been.
    text = day_one("zebra")
    assert MISSING in text and "recovered one" not in text and len(text.splitlines()) == 1
