"""The pages refuse what the API and the CLI refuse (new-user walk, LOW): a month that is no month is a 400 as a
day that is no day, and a search in a room nobody archived says so, as it does of a room the caller may not see
(the same answer), on both stores."""

from __future__ import annotations

import re

from ..conftest import LOBBY, MISSING, SECRET
from .test_pages import sign_in


def test_a_room_page_of_a_month_that_is_no_month_is_a_400_as_a_bad_day_is(client, tokens):
    sign_in(client, tokens["compliance"])
    assert client.get(f"/rooms/{LOBBY}?day=2026-13-45").status_code == 400
    for month in ("2026-13", "2026-00", "x", "2026-1-1", "10000-01"):
        page = client.get(f"/rooms/{LOBBY}?month={month}")
        assert page.status_code == 400 and "month" in page.text, (month, page.status_code)
    assert client.get(f"/rooms/{LOBBY}?month=2023-12").status_code == 200
    assert client.get(f"/rooms/{LOBBY}?month=").status_code == 200  # none given: the day's month


def test_a_search_in_a_room_nobody_archived_or_one_not_visible_says_no_such_room(app, tokens):
    compliance = app.test_client()
    sign_in(compliance, tokens["compliance"])
    missing = compliance.get(f"/?q=deploy&room={MISSING}")
    assert missing.status_code == 404 and f"no room &#39;{MISSING}&#39;" in missing.text, missing.text
    assert compliance.get("/?q=deploy&room=nosuch").status_code == 404
    assert compliance.get(f"/?q=deploy&room={LOBBY}").status_code == 200
    assert compliance.get("/?q=deploy&room=lobby").status_code == 200  # a bare name, as search's room: reads it
    site = app.test_client()
    sign_in(site, tokens["site"], user="sam")
    hidden, nowhere = site.get(f"/?q=deploy&room={SECRET}"), site.get(f"/?q=deploy&room={MISSING}")
    assert (hidden.status_code, nowhere.status_code) == (404, 404)
    said = [re.search(r'<p class="error">(.*?)</p>', page.text).group(1) for page in (hidden, nowhere)]
    assert said[0].replace(SECRET, MISSING) == said[1], said
    assert site.get("/?q=deploy&room=secret").status_code == 404
