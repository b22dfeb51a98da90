"""Pages, sign-in and widget endpoints through Flask's test client (the seeded archive of tests/query_api)."""

from __future__ import annotations

import re

import pytest

from query_api import create_app
from query_api.context import api
from query_api.roles import Role
from query_api.tokens import hash_token
from query_api.web import pages, search_page
from query_api.web.widget import TICKET_PURPOSE

from tests.factories import message

from ..conftest import LOBBY, PUBLIC, SECRET, auth, make_config, store_signer


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f.]+)"', page.text).group(1)


def sign_in(client, token: str, user: str = "", base_url: str = "http://localhost", **extra):
    form = {"csrf_token": csrf_of(client.get("/signin", base_url=base_url)), "token": token, "user": user, **extra}
    return client.post("/signin", data=form, base_url=base_url)


def test_sign_in_sets_an_httponly_lax_session_cookie_secure_over_https(app, tokens):
    for base, secure in (("http://archive.test", False), ("https://archive.test", True)):
        client = app.test_client()
        response = sign_in(client, tokens["compliance"], base_url=base)
        assert response.status_code == 303 and response.headers["Location"] == "/"
        cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("chat_archive_session="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and ("Secure" in cookie) is secure
        assert tokens["compliance"] not in cookie
        assert client.get("/", base_url=base).status_code == 200


def test_forms_need_their_csrf_token_and_our_origin(client, tokens):
    assert client.post("/signin", data={"token": tokens["compliance"]}).status_code == 403
    forged = {"csrf_token": "0" * 64, "token": tokens["compliance"]}
    assert client.post("/signin", data=forged).status_code == 403
    form = {"csrf_token": csrf_of(client.get("/signin")), "token": tokens["compliance"]}
    assert client.post("/signin", data=form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/signin", data=form, headers={"Origin": "http://localhost"}).status_code == 303
    # signed in: the session's own token is needed to sign out
    assert client.post("/signout", data={"csrf_token": form["csrf_token"]}).status_code == 403
    assert client.post("/signout", data={"csrf_token": csrf_of(client.get("/"))}).status_code == 303
    assert "Sign out" not in client.get("/").text


def test_a_csrf_token_of_our_key_id_and_non_ascii_text_is_refused_not_a_500(client, tokens):
    """The form's field is whatever the browser sends: after a real key id (the first 8 characters of any
    page's token) text hmac cannot compare as str (non-ASCII) must be a 403 like any other forgery."""
    real = csrf_of(client.get("/signin"))
    for sent in (real[:8] + "\u00e9" * 64, real[:-1] + "\u00e9", real[:8] + "\u2028"):
        response = client.post("/signin", data={"csrf_token": sent, "token": tokens["compliance"]})
        assert response.status_code == 403, (sent, response.status_code)


def test_sign_in_only_redirects_within_the_site(client, tokens):
    for target, expected in (
        ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/rooms", "/rooms"),
        ("/\t/evil.example", "/"), ("/\n/evil.example", "/"), ("/\r\n/evil.example", "/"), ("\t//evil.example", "/"),
        ("/\\evil.example", "/"), ("/ /evil.example", "/"), ("/\x00/evil.example", "/"), ("/\u2028/evil.example", "/"),
        ("/rooms/lobby@conference.localhost?day=2024-05-01", "/rooms/lobby@conference.localhost?day=2024-05-01"),
    ):  # fmt: skip
        response = sign_in(client, tokens["compliance"], next=target)
        assert response.status_code == 303 and response.headers["Location"] == expected, target


def test_bad_tokens_and_site_tokens_without_a_user_are_refused(client, tokens):
    assert "not valid" in sign_in(client, "cat_nope").text
    response = sign_in(client, tokens["site"])
    # The form's field, not the API's header (the page said "... in X-Chat-Archive-User", which no one signing in types).
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text).group(1)
    assert response.status_code == 400 and "Site user" in error and "X-Chat-Archive-User" not in error, error


def test_pages_grant_exactly_what_the_api_grants(app, client, tokens, api_settings):
    sign_in(client, tokens["site"], "carol")
    assert [m for m in re.findall(r'class="room" href="/rooms/([^"]+)"', client.get("/rooms").text)] == [LOBBY, PUBLIC]
    for room in (SECRET, "nowhere@conference.localhost"):
        page = client.get(f"/rooms/{room}")
        assert page.status_code == 404 and "Not found" in page.text and "secret subject" not in page.text
    found = client.get("/?q=secret").text
    assert 'id="total">0<' in found and 'class="hit ' not in found and 'class="hit"' not in found

    analyst = app.test_client()
    sign_in(analyst, tokens["analyst"])
    assert analyst.get("/?q=x").status_code == 403  # analysts may not search, in the API nor here
    assert analyst.get(f"/rooms/{LOBBY}").status_code == 403


def test_a_revoked_token_signs_the_page_user_out(client, token_store):
    token, info = token_store.create(Role.COMPLIANCE)
    sign_in(client, token)
    assert SECRET in client.get("/rooms").text
    token_store.revoke(info.id)
    page = client.get("/rooms")  # anonymous read is on in these tests: public rooms only
    assert SECRET not in page.text and PUBLIC in page.text and "Sign out" not in page.text


def test_without_anonymous_read_pages_ask_to_sign_in(app, tokens):
    app.extensions["chat_archive"].settings = type(app.extensions["chat_archive"].settings)()
    client = app.test_client()
    response = client.get("/rooms?x=1")
    assert response.status_code == 303 and response.headers["Location"] == "/signin?next=/rooms?x%3D1"


def test_search_filters_sort_paging_and_facets(client, tokens, monkeypatch):
    monkeypatch.setattr(search_page, "SEARCH_PAGE", 2)
    sign_in(client, tokens["compliance"])
    assert search_page.query_text({"q": "x", "rooms": [LOBBY, PUBLIC], "people": "ann lee, bob", "after": "2024-05-01",
                             "before": "", "sort": "relevance"}) == (
        f'x (room:"{LOBBY}" OR room:"{PUBLIC}") (from:"ann lee" OR from:"bob") after:"2024-05-01"'
    )  # fmt: skip
    first = client.get(f"/?q=from&room={LOBBY}&sort=oldest")
    assert first.status_code == 200
    bodies = re.findall(r'<div class="snippet-text">(.*?)</div>', first.text)
    assert bodies == ["hello <mark>from</mark> lobby"]
    page = client.get("/?q=lobby OR public&sort=newest")
    assert len(re.findall(r'class="hit[ "]', page.text)) == 2
    following = re.search(r'id="next-page" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    second = client.get("/" + following)
    assert "page 2" in second.text and len(re.findall(r'class="hit[ "]', second.text)) == 2
    assert re.search(r'href="\?[^"]*people=alice"', page.text)  # a sender facet narrows the search
    bad = client.get("/?q=deploy%20%22open")
    assert bad.status_code == 400  # as the API answers it (the page was a 200 with the error on it)
    # one place, one position: the message's, and the caret under the query at that column
    assert "unterminated quote at position 7" in bad.text and "character" not in bad.text
    caret = re.search(r'<pre class="query-caret"[^>]*>(.*?)</pre>', bad.text, re.S).group(1).splitlines()
    assert caret[0] == "deploy &#34;open" and caret[1] == " " * 7 + "^"


def test_a_room_day_navigates_between_active_days_and_stops_at_the_ends(client, tokens):
    sign_in(client, tokens["compliance"])
    page = client.get(f"/rooms/{LOBBY}")  # the day of the latest line, the room's only day
    assert '<span id="prev-day" class="muted">first day archived' in page.text
    assert '<span id="next-day" class="muted">latest day archived' in page.text
    assert "fixed in lobby" in page.text and 'class="line joined' in page.text
    assert "May 2024" in page.text and "(1 active day)" in page.text
    assert re.findall(r'class="active-day" href="([^"]+)">(\d+)<', page.text) == [(f"/rooms/{LOBBY}?day=2024-05-01", "1")]
    empty = client.get(f"/rooms/{LOBBY}?day=2024-04-20").text  # before the history: only a way forward
    assert "Nothing archived on this day" in empty and "first day archived" in empty
    assert re.search(r'id="next-day" href="[^"]*day=2024-05-01"', empty)
    later = client.get(f"/rooms/{LOBBY}?day=2024-06-20").text  # after it: only a way back
    assert re.search(r'id="prev-day" href="[^"]*day=2024-05-01"', later) and "latest day archived" in later
    april = client.get(f"/rooms/{LOBBY}?day=2024-05-01&month=2024-04").text
    assert "April 2024" in april and "(0 active days)" in april and 'href="/rooms/' in april
    assert client.get(f"/rooms/{LOBBY}?day=2024-05-01&month=nonsense").status_code == 400  # as a day that is none
    assert client.get(f"/rooms/{LOBBY}?day=May").status_code == 400
    assert client.get(f"/rooms/{LOBBY}?at=soon").status_code == 400
    # Out of range, a page's 400 as any other (it was the API's JSON, naming no parameter), and '+' hinted at.
    for query, words in (("at=9999-12-31T23:59:59Z", "at: must be between"), ("day=9999-12-31", "day: must be between"),
                         ("at=2024-05-01T12:00:00+01:00", "as %2B")):
        refused = client.get(f"/rooms/{LOBBY}?{query}")
        assert refused.status_code == 400 and refused.mimetype == "text/html" and words in refused.text, query


def test_the_rooms_page_comes_in_pages(private_app, private_seeded, tokens, monkeypatch):
    """/rooms summarised every room the caller may see in one page (each summary reads the views and the index):
    thousands of rooms made one enormous, slow page."""
    monkeypatch.setattr(pages, "ROOMS_PAGE", 2, raising=False)  # raising: the test must fail without it too
    more = [f"room-{i}@conference.localhost" for i in range(3)]
    private_seeded.store.append([message(1, "hi", room=room) for room in more])
    private_seeded.catch_up()
    client = private_app.test_client()
    sign_in(client, tokens["compliance"])
    shown, url = [], "/rooms"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        listed = re.findall(r'class="room" href="/rooms/([^"]+)"', page.text)
        assert len(listed) <= 2
        shown += listed
        found = re.search(r'id="next-page" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert shown == sorted([LOBBY, PUBLIC, SECRET, *more])


def test_the_people_filter_finds_a_nick_with_a_quote_in_it(private_app, private_seeded, tokens):
    """The filters were put into the query inside quotes as they were: a nick with a " (the "boss") was a query
    error pointing at text the person never typed."""
    private_seeded.store.append([message(40, "quarterly numbers", 'the "boss"', room=LOBBY)])
    private_seeded.catch_up()
    client = private_app.test_client()
    sign_in(client, tokens["compliance"])
    page = client.get("/", query_string={"people": 'the "boss"', "q": ""})
    assert page.status_code == 200 and 'id="query-error"' not in page.text
    assert re.findall(r'<div class="snippet-text">(.*?)</div>', page.text) == ["quarterly numbers"]


def test_who_was_here_at_t_is_answered_for_t_not_for_the_day_shown(private_app, private_seeded, tokens):
    """The chart's script puts ?at=T in the page's address. Opened again once the room has a later day (no day
    given: the latest one), or with another day's T, the page answered from the bars of the day it showed: bob,
    there at T, was missing (on a day before, "nobody")."""
    private_seeded.store.append([message(3 * 86400, "days later", "carol", room=LOBBY)])
    private_seeded.catch_up()
    client = private_app.test_client()
    sign_in(client, tokens["compliance"])
    page = client.get(f"/rooms/{LOBBY}?at=2024-05-01T12:00:30Z")
    assert page.status_code == 200 and "fixed in lobby" in page.text  # the day of T, not the latest
    who = re.search(r'<div id="who-was-here".*?</div>', page.text, re.S).group(0)
    assert "alice" in who and "bob" in who
    for day in ("2024-05-04", "2024-04-30"):
        assert client.get(f"/rooms/{LOBBY}?day={day}&at=2024-05-01T12:00:30Z").status_code == 400
    # Before the room's first event (12:00:00) the archive did not watch it: not "nobody", as the API says.
    early = client.get(f"/rooms/{LOBBY}?at=2024-05-01T11:00:00Z")
    who = re.search(r'<div id="who-was-here".*?</div>', early.text, re.S).group(0)
    assert "not known: the archive of this room begins at 2024-05-01T12:00:00Z" in who and "nobody" not in who


def test_a_hit_the_transcript_has_not_caught_up_with_shows_its_day_meanwhile(client, tokens):
    sign_in(client, tokens["compliance"])
    pending = client.get(f"/rooms/{LOBBY}?around=999999&t=2024-05-01T12:00:00Z")
    assert pending.status_code == 200 and 'id="pending"' in pending.text and "fixed in lobby" in pending.text
    assert client.get(f"/rooms/{LOBBY}?around=999999").status_code == 404
    assert client.get(f"/rooms/{LOBBY}?around=999999&t=soon").status_code == 400


def test_a_long_day_is_paged(client, tokens, monkeypatch):
    monkeypatch.setattr(pages, "DAY_LINES", 4)
    sign_in(client, tokens["compliance"])
    first = client.get(f"/rooms/{LOBBY}?day=2024-05-01")
    ids = re.findall(r'<li id="l(\d+)"', first.text)
    assert len(ids) == 4 and "earlier lines" not in first.text
    later = re.search(r'href="([^"]+)">later lines', first.text).group(1).replace("&amp;", "&")
    second = client.get(later)
    more = re.findall(r'<li id="l(\d+)"', second.text)
    assert more and not set(more) & set(ids) and int(more[0]) > int(ids[-1])
    earlier = re.search(r'href="([^"]+)">earlier lines', second.text).group(1).replace("&amp;", "&")
    assert re.findall(r'<li id="l(\d+)"', client.get(earlier).text) == ids
    assert client.get(f"/rooms/{LOBBY}?day=2024-05-01&cursor=x").status_code == 400


def widget_ticket(client, token: str, room: str, user: str | None = "carol", **body):
    return client.post("/widget/tickets", json={"room": room, **body}, headers=auth(token, user))


def test_widget_tickets_only_for_rooms_the_site_user_may_see(client, tokens):
    assert client.post("/widget/tickets", json={"room": LOBBY}).status_code == 401
    assert widget_ticket(client, tokens["site"], SECRET).status_code == 404
    assert widget_ticket(client, tokens["analyst"], LOBBY, None).status_code == 403
    issued = widget_ticket(client, tokens["site"], LOBBY).json
    assert issued["url"].endswith(f"/widget/{LOBBY}#ticket={issued['ticket']}") and not issued["credentials"]
    ticket = {"X-Widget-Ticket": issued["ticket"]}
    activity = client.get(f"/widget/{LOBBY}/activity", headers=ticket).json
    kinds = [item["kind"] for item in activity["items"]]
    assert "message" in kinds and "joined" in kinds and activity["cursor"]
    assert client.get(f"/widget/{PUBLIC}/activity", headers=ticket).status_code == 401  # one ticket, one room
    assert client.get(f"/widget/{LOBBY}/activity", headers={"X-Widget-Ticket": "forged"}).status_code == 401


def test_widget_without_a_ticket_serves_public_rooms_to_anonymous_viewers_only(client):
    assert client.get(f"/widget/{PUBLIC}/activity").status_code == 200
    assert client.get(f"/widget/{LOBBY}/activity").status_code == 404
    assert client.get(f"/widget/{SECRET}/activity").status_code == 404
    assert client.get(f"/widget/{PUBLIC}/activity?cursor=zzz").status_code == 400


def test_widget_credentials_go_back_in_the_fragment_and_the_server_holds_no_xmpp_session(client, tokens):
    issued = widget_ticket(client, tokens["site"], LOBBY, jid="carol@localhost", password="pw & more", nick="Carol").json
    fragment = issued["url"].split("#", 1)[1]
    assert issued["credentials"] and "password=pw+%26+more" in fragment and "jid=carol%40localhost" in fragment
    assert widget_ticket(client, tokens["site"], LOBBY, password=["x"]).status_code == 400
    for gone in ("join", "say", "leave"):  # the browser speaks XMPP itself (static/xmpp.js)
        assert client.post(f"/widget/{LOBBY}/{gone}", json={}).status_code in (404, 405)


def test_a_ticket_request_naming_a_field_the_widget_does_not_know_is_a_400_not_ignored(client, tokens):
    """As with query parameters, an unknown name is a 400, never a guess: a site that sent `nickname` got a
    ticket without the nick, and its user was asked to type one."""
    refused = widget_ticket(client, tokens["site"], LOBBY, jid="carol@localhost", password="pw", nickname="Carol")
    assert refused.status_code == 400, refused.json
    assert refused.json["error"]["code"] == "unknown_parameter" and "'nickname'" in refused.json["error"]["message"]


def test_a_ticket_request_with_a_null_credential_is_a_400_naming_it(client, tokens):
    """`"jid": null` was taken for no jid, as if left out: a site whose user has no jid yet got a ticket whose
    Join asks for one, while a number or list there is a 400."""
    for name in ("jid", "password", "nick"):
        refused = widget_ticket(client, tokens["site"], LOBBY, **{name: None})
        assert refused.status_code == 400, refused.json
        assert refused.json["error"]["code"] == "invalid_parameter"
        assert refused.json["error"]["message"].startswith(f"{name}: must be a string")


def test_a_forged_widget_ticket_is_not_called_expired(client):
    """A ticket the server never signed was answered "this widget's ticket has expired: reload the page", which
    sends the embedding site's developer looking at clocks instead of at how the ticket was made."""
    for forged in ("abc", "aaaaaaaa.e30.AAAA"):
        answer = client.get(f"/widget/{LOBBY}/activity", headers={"X-Widget-Ticket": forged})
        assert answer.status_code == 401
        message = answer.json["error"]["message"]
        assert "expired" not in message and "not a widget ticket this server issued" in message, message
    with client.application.app_context():
        expired = api().signer.sign([LOBBY, "id", "carol"], TICKET_PURPOSE, ttl=-5)
    answer = client.get(f"/widget/{LOBBY}/activity", headers={"X-Widget-Ticket": expired})
    assert answer.status_code == 401 and "has expired: reload the page" in answer.json["error"]["message"]


def test_the_widget_may_connect_only_to_the_configured_xmpp_websocket(client, request, api_settings):
    page = client.get(f"/widget/{PUBLIC}")
    assert "connect-src 'self';" in page.headers["Content-Security-Policy"] and 'data-websocket=""' in page.text
    api_settings["widget_websocket_url"] = "wss://xmpp.example.org:5281/xmpp-websocket"
    configured = request.getfixturevalue("private_app").test_client()
    page = configured.get(f"/widget/{PUBLIC}")
    assert "connect-src 'self' wss://xmpp.example.org:5281;" in page.headers["Content-Security-Policy"]
    assert 'data-websocket="wss://xmpp.example.org:5281/xmpp-websocket"' in page.text
    assert "connect-src 'self';" in configured.get("/signin").headers["Content-Security-Policy"]  # pages: no


@pytest.mark.parametrize("path", ["/signin", f"/widget/{LOBBY}", "/api/v1/rooms"])
def test_every_response_has_a_content_security_policy(client, path):
    policy = client.get(path).headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self' 'nonce-" in policy
    ancestors = "frame-ancestors 'self'" if path.startswith("/widget/") else "frame-ancestors 'none'"
    assert ancestors in policy


def test_the_policy_is_whole_and_its_nonce_new_on_every_response(client):
    """The policy's text is composed once per kind of response (pages, widget); its nonce each time."""
    policies = [client.get(path).headers["Content-Security-Policy"] for path in ("/signin", "/signin", f"/widget/{PUBLIC}")]
    nonces = [re.search(r"'nonce-([^']+)'", policy).group(1) for policy in policies]
    assert len(set(nonces)) == 3
    assert policies[0].replace(nonces[0], "N") == (
        "default-src 'none'; script-src 'self' 'nonce-N'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    assert policies[2].replace(nonces[2], "N").endswith("; base-uri 'none'; frame-ancestors 'self'")


def test_sessions_and_tickets_made_by_one_process_serve_in_another(
    client, tokens, archive, views, search_index, token_store, seeded_url, api_settings
):
    """Nothing is kept in a process: a second app over the same store (another worker, another host)
    accepts the first one's sign-in cookie, CSRF tokens and widget tickets; a revoked token ends both."""
    sign_in(client, tokens["site"], "carol")
    issued = widget_ticket(client, tokens["site"], LOBBY).json["ticket"]
    config = make_config(seeded_url, **api_settings)  # the same archive; its own signer reading the same keys
    with store_signer(seeded_url) as signer:
        another = create_app(config, store=archive, views=views, search=search_index, tokens=token_store, signer=signer)
        check_another_process(another.test_client(), client, issued, tokens, token_store)


def check_another_process(other, client, issued: str, tokens, token_store):
    cookie = client.get_cookie("chat_archive_session").value
    other.set_cookie("chat_archive_session", cookie)
    assert "lobby" in other.get("/rooms").text and "Sign out" in other.get("/").text
    assert other.post("/signout", data={"csrf_token": csrf_of(client.get("/"))}).status_code == 303
    assert other.get(f"/widget/{LOBBY}/activity", headers={"X-Widget-Ticket": issued}).status_code == 200
    forged = issued[:-3] + ("AAA" if not issued.endswith("AAA") else "BBB")
    assert other.get(f"/widget/{LOBBY}/activity", headers={"X-Widget-Ticket": forged}).status_code == 401
    token_store.revoke(hash_token(tokens["site"])[:12])
    assert other.get(f"/widget/{LOBBY}/activity", headers={"X-Widget-Ticket": issued}).status_code == 401
    assert "lobby" not in other.get("/rooms").text and "Sign out" not in other.get("/").text  # anonymous now


def test_a_session_cookie_holds_no_token_and_cannot_be_altered(client, tokens):
    sign_in(client, tokens["compliance"])
    value = client.get_cookie("chat_archive_session").value
    assert tokens["compliance"] not in value
    key_id, body, mac = value.split(".")
    client.set_cookie("chat_archive_session", f"{key_id}.{body}x.{mac}")
    assert "Sign out" not in client.get("/").text


def test_the_embed_snippet_holds_any_room_name_inside_its_attributes(app):
    """The room page's embed snippet, pasted by a site's editor into their own pages, put the room's name into
    its title attribute as it was: a room an import named with a quote (no rule forbids one there) closed the
    attribute and added its own, e.g. an event handler, to the site that embeds the widget."""
    from html.parser import HTMLParser

    room = 'a"onload="alert(1)<b>@x'
    with app.test_request_context():
        snippet = pages.widget_snippet(room)

    class Iframe(HTMLParser):
        attrs: dict = {}

        def handle_starttag(self, tag, attrs):
            Iframe.attrs = dict(attrs)

    Iframe().feed(snippet)
    assert Iframe.attrs["title"] == room and "onload" not in Iframe.attrs


def test_a_number_out_of_range_in_a_page_address_is_the_pages_error_page_not_json(client, tokens):
    """A line id of 23 digits answered the room page with the API's JSON error on SQLite (an overflow in its
    integer) and a 404 on PostgreSQL: the page takes ``around`` by the API's rule, and a person reading pages gets
    the pages' error page, as for every other bad address."""
    sign_in(client, tokens["compliance"])
    page = client.get(f"/rooms/{LOBBY}?around=99999999999999999999999")
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert "is not a line position or message id" in page.text and "Back to search" in page.text


def test_an_analyst_signing_in_lands_on_the_rooms_not_a_403(client, tokens):
    """Sign-in goes to /, the search page, which an analyst may not use: its first page was "403 the analyst
    role may not use these pages", whose "Back to search" led to the same 403. / sends a role that cannot search
    to the rooms, and a page a role may not use says what it may not do, as the API does."""
    signed_in = sign_in(client, tokens["analyst"])
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 303 and home.headers["Location"] == "/rooms"
    assert client.get("/rooms").status_code == 200
    refused = client.get(f"/rooms/{LOBBY}")
    assert refused.status_code == 403
    assert "the analyst role may not read transcripts: only the compliance and site roles may" in refused.text
