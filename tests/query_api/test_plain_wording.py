"""What the transcript's text, the pages and the exports say of a gap and of an occupant the listener lost sight
of, and the participants an RSMF file names, each once and in plain words (new-user walk, LOW), on both stores."""

from __future__ import annotations

import email
import email.policy
import re
import zipfile

from archive import events as ev
from ingest.catchup import CatchUp, Completeness, gap_event
from projections.lines import Line
from projections.ranges import Held
from query_api.exports.bundle import ExportRequest, write_bundle
from query_api.exports.rsmf import rsmf_file
from tests.factories import at

from .conftest import auth
from .test_export_ranges import D1, ROOM, _at, h
from .web.test_pages import sign_in

RECOVERED = "0 messages recovered"


def _seeded_with_a_gap_and_a_lost_occupant(private_seeded):
    # The gap as the listener records it (its explanation says what it recovered): the line said that twice.
    outcome = CatchUp(mam=True, recovered=0, checked=Completeness(server=3, archived=1, missing=("x", "y")))
    gap = gap_event(ROOM, h(D1, 8), h(D1, 10), outcome)
    assert RECOVERED in gap.explanation
    private_seeded.store.append([
        _at(h(D1, 7), ev.OccupantJoined, nick="alice_", jid="alice@localhost/pc"),
        _at(h(D1, 7.5), ev.MessagePosted, nick="alice_", body="before the gap", stanza_id="s1"),
        gap,
        _at(h(D1, 10), ev.OccupantLeft, nick="alice_", reason=ev.LeaveReason.LOST_SIGHT),
    ])  # fmt: skip
    private_seeded.catch_up()


def test_a_gap_says_what_was_recovered_once_and_a_lost_occupant_reads_lost_sight_of(
    private_app, private_seeded, tokens, tmp_path
):
    _seeded_with_a_gap_and_a_lost_occupant(private_seeded)
    client, headers = private_app.test_client(), auth(tokens["compliance"])
    text = client.get(f"/api/v1/rooms/{ROOM}/transcript?day=2024-06-01&format=text", headers=headers).text
    gap_line = next(line for line in text.splitlines() if "may be missing" in line)
    assert gap_line.count("recovered") == 1 and RECOVERED in gap_line, gap_line
    assert "not verified against the room's archive" in gap_line and "2 messages could not be stored" in gap_line
    assert "* alice_ was lost sight of" in text, text
    web = private_app.test_client()
    sign_in(web, tokens["compliance"])
    page = " ".join(web.get(f"/rooms/{ROOM}?day=2024-06-01").text.split())
    (gap_item,) = re.findall(r'<li id="l\d+" class="line gap">.*?</li>', page)  # (the chart's gaps say why too)
    assert gap_item.count("recovered") == 1 and RECOVERED in gap_item and "alice_ was lost sight of" in page
    for fmt in ("eml", "rsmf"):
        path = tmp_path / f"{fmt}.zip"
        with open(path, "wb") as out:
            write_bundle(out, ExportRequest(format=fmt, rooms=(ROOM,)), private_seeded.store, private_seeded.views,
                         private_seeded.search)
        with zipfile.ZipFile(path) as zf:
            (name,) = [n for n in zf.namelist() if n.endswith(f".{fmt}")]
            body = email.message_from_bytes(zf.read(name), policy=email.policy.default).get_body(("plain",))
            shown = body.get_content()
        assert shown.count("recovered") == 1 and "alice_ was lost sight of" in shown, shown


def test_a_gap_whose_explanation_says_nothing_of_it_still_says_what_was_recovered():
    from query_api.transcript import describe

    line = Line(id=1, room=ROOM, at=at(0), kind="gap", gap_end=at(60), gap_kind="messages", reason="listener away",
                gap_recovered=2, gap_verified=False)
    assert describe(line).endswith("(not verified against the room's archive; 2 messages recovered): listener away")


def test_an_rsmf_header_names_each_participant_once():
    """One nick seen with its real JID and without (a line the room gave no JID) is two participants of the
    manifest, but one name of the header (it read "alice, dave, alice, ...")."""
    lines = [
        Line(id=1, room=ROOM, at=at(0), kind="message", nick="alice", jid="alice@localhost/pc", body="hi"),
        Line(id=2, room=ROOM, at=at(1), kind="message", nick="dave", jid="dave@localhost/pc", body="hello"),
        Line(id=3, room=ROOM, at=at(2), kind="left", nick="alice", leave_reason="lost_sight"),
    ]
    message = email.message_from_bytes(rsmf_file(ROOM, [Held(line) for line in lines], ROOM),
                                       policy=email.policy.default)
    assert message["X-RSMF-Participants"] == "alice, dave"


def test_every_way_of_leaving_reads_as_a_sentence():
    from query_api.transcript import describe

    said = {reason.value: describe(Line(id=1, room=ROOM, at=at(0), kind="left", nick="bob", leave_reason=reason.value))
            for reason in ev.LeaveReason}
    assert said == {
        "left": "bob left", "kicked": "bob was kicked", "banned": "bob was banned",
        "removed": "bob was removed", "room_destroyed": "bob left as the room was destroyed",
        "shutdown": "bob left as the service shut down", "lost_sight": "bob was lost sight of",
    }  # fmt: skip
    kicked = Line(id=1, room=ROOM, at=at(0), kind="left", nick="bob", leave_reason="kicked", actor="mod", reason="spam")
    assert describe(kicked) == "bob was kicked by mod: spam"

