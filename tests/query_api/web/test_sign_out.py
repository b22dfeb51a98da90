"""Sign-out ends the session on the server: a copy of the cookie is refused afterwards, by every process
of the archive (on both stores), while the user's other sessions go on."""

from __future__ import annotations

import pytest

from query_api import create_app
from query_api.roles import Role
from query_api.web.auth import SESSION_COOKIE, SESSION_PURPOSE, SESSION_SECONDS

from ..conftest import LOBBY, SECRET, make_config, store_signer
from .test_pages import csrf_of, sign_in


def sign_out(client) -> None:
    assert client.post("/signout", data={"csrf_token": csrf_of(client.get("/"))}).status_code == 303


def with_cookie(app, value: str):
    """A browser that was never signed in, holding a copied session cookie."""
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, value)
    return thief


def assert_refused(browser) -> None:
    """Pages send it to sign in; the widget's JSON answers 401 (anonymous read is off)."""
    page = browser.get("/rooms")
    assert page.status_code == 303 and page.headers["Location"].startswith("/signin")
    feed = browser.get(f"/widget/{LOBBY}/activity")
    assert feed.status_code == 401 and feed.json["error"]["code"] == "unauthorized"
    # A page user's widget (no ticket) was told "the embedding site must pass a ticket": there is no embedding site.
    assert "sign in" in feed.json["error"]["message"], feed.json


def assert_signed_in(browser) -> None:
    page = browser.get("/rooms")
    assert page.status_code == 200 and SECRET in page.text and "Sign out" in page.text


@pytest.fixture
def closed_app(request, api_settings):
    """The app without anonymous read (a refused session is sent to sign in), token lookups cached
    as by default: the process that signs out must refuse the session at once all the same."""
    api_settings.update(anonymous_read=False, token_cache_seconds=5.0)
    return request.getfixturevalue("app")


def test_a_copied_cookie_is_refused_after_sign_out_and_other_sessions_go_on(closed_app, tokens):
    browser, other_session = closed_app.test_client(), closed_app.test_client()
    sign_in(browser, tokens["compliance"])
    sign_in(other_session, tokens["compliance"])  # the same user, elsewhere
    copied = browser.get_cookie(SESSION_COOKIE).value
    assert_signed_in(with_cookie(closed_app, copied))  # seen (and cached) before sign-out
    sign_out(browser)
    assert_refused(with_cookie(closed_app, copied))
    assert_signed_in(other_session)


def test_sign_out_in_one_process_ends_the_session_in_every_other(
    request, api_settings, tokens, archive, views, search_index, token_store, seeded_url
):
    """A second app over the same store stands in for another worker or host; checks are not cached
    here, so each app answers from the store (the bound a cache adds: tests/query_api/test_sessions.py)."""
    api_settings.update(anonymous_read=False, token_cache_seconds=0)
    first = request.getfixturevalue("app")
    config = make_config(seeded_url, **api_settings)
    with store_signer(seeded_url) as signer:
        second = create_app(config, store=archive, views=views, search=search_index, tokens=token_store, signer=signer)
        for signs_out, replayed in ((first, second), (second, first)):
            browser = signs_out.test_client()
            sign_in(browser, tokens["compliance"])
            copied = browser.get_cookie(SESSION_COOKIE).value
            assert_signed_in(with_cookie(replayed, copied))
            sign_out(browser)
            assert_refused(with_cookie(replayed, copied))
            assert_refused(with_cookie(signs_out, copied))


def test_a_session_without_an_id_cannot_be_ended_and_is_not_accepted(closed_app, token_store, seeded_signer):
    """The shape of a session from before sign-out was kept on the server: signed, but nothing could end it."""
    _, info = token_store.create(Role.COMPLIANCE)
    old = seeded_signer.sign([info.id, None], SESSION_PURPOSE, ttl=SESSION_SECONDS)
    assert_refused(with_cookie(closed_app, old))
