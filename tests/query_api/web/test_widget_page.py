"""``/widget/{room}``: a visit of its own is answered by the access rule every page applies; a framed one
(its ticket in the fragment, which no server sees) gets the shell, whose feed then checks the ticket."""

from __future__ import annotations

from ..conftest import LOBBY, PUBLIC, SECRET
from .test_pages import sign_in

VISIT = {"Sec-Fetch-Dest": "document"}  # what a browser sends for a page opened in its own tab
FRAMED = {"Sec-Fetch-Dest": "iframe"}
NOWHERE = "nowhere@conference.localhost"


def test_a_widget_visited_for_a_room_the_caller_may_not_see_is_not_found(client, tokens):
    """The shell was rendered for any room name, one that does not exist included."""
    assert client.get(f"/widget/{PUBLIC}", headers=VISIT).status_code == 200  # anonymous read of a public room
    missing, hidden = (client.get(f"/widget/{room}", headers=VISIT) for room in (NOWHERE, LOBBY))
    assert missing.status_code == hidden.status_code == 404  # the same answer: one tells nothing the other does not
    sign_in(client, tokens["site"], "carol")
    assert client.get(f"/widget/{LOBBY.upper()}", headers=VISIT).status_code == 200  # named as JIDs are
    assert client.get(f"/widget/{SECRET}", headers=VISIT).status_code == 404
    assert client.get(f"/widget/{NOWHERE}", headers=VISIT).status_code == 404


def test_a_framed_widget_is_served_for_its_ticket_to_decide(client):
    for room in (LOBBY, NOWHERE):
        assert client.get(f"/widget/{room}", headers=FRAMED).status_code == 200
        assert client.get(f"/widget/{room}/activity").status_code == 404  # its feed: the rule again, without a ticket
