"""The pages in headless Chromium against a real server process: sign-in, search, a hit opened in
its transcript, the presence chart, escaping, and rooms a caller may not see."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from archive.application import open_event_store
from query_api.roles import Role
from query_api.tokens import open_token_store

from ..conftest import archive_url
from .seed import CORRECTED, DASHBOARDS, EDITED, LOBBY, RETRACTED, SECRET, UNSAFE_LINK, XSS_BODY, XSS_NICK, events
from tests.services.axe import serious_violations

from .server import ServerProcess, keep, listener_config


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, prosody, tmp_path_factory):
    """A seeded archive served by ``chat-archive up`` (its listener on the test's Prosody), and tokens."""
    directory = tmp_path_factory.mktemp(f"web-pages-{request.param}")
    with archive_url(request.param, directory) as store_url:
        yield from _site(prosody, directory, store_url)


def _site(prosody, directory, store_url: str):
    with open_event_store(store_url) as store:
        store.append(events())
    tokens = open_token_store(store_url)
    issued = {
        "compliance": tokens.create(Role.COMPLIANCE, label="officer")[0],
        "site": tokens.create(Role.SITE, (LOBBY,), label="collab site")[0],
    }
    tokens.close()
    server = ServerProcess(
        directory,
        {
            "xmpp": listener_config(prosody),
            "store": {"url": store_url},
            "index": {"path": str(directory / "index"), "commit_interval": 0.1},
            "projections": {"commit_interval": 0.1},
            "api": {"widget_frame_ancestors": ["'self'", "https://collab.example.org"]},
        },
    )
    try:
        yield server.start(), issued
    finally:
        server.stop()


def wait(browser, condition, timeout: float = 10):
    return WebDriverWait(browser, timeout).until(condition)


def sign_in(browser, base: str, token: str, user: str = "") -> None:
    browser.delete_all_cookies()
    browser.get(base + "/signin")
    browser.find_element(By.ID, "token").send_keys(token)
    if user:
        browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "signin").click()
    wait(browser, EC.presence_of_element_located((By.ID, "q")))


def search_until_found(browser, base: str, query: str, timeout: float = 15) -> None:
    """The index follows the log a moment after the server starts: search until hits show."""
    deadline = time.monotonic() + timeout
    while True:
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys(query)
        browser.find_element(By.ID, "search-button").click()
        wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "p.total, p.error")))
        if browser.find_elements(By.CSS_SELECTOR, "li.hit"):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no hits for {query!r}: {browser.find_element(By.TAG_NAME, 'main').text}")
        time.sleep(0.3)


def no_script_ran(browser) -> None:
    assert browser.execute_script("return window.xssFired === undefined")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


def test_search_then_open_a_hit_in_its_transcript_with_the_presence_chart(browser, site, screenshot_dir):
    base, tokens = site
    sign_in(browser, base, tokens["compliance"])
    search_until_found(browser, base, "deploy")
    hits = browser.find_elements(By.CSS_SELECTOR, "li.hit")
    assert int(browser.find_element(By.ID, "total").text) >= 6
    assert browser.find_elements(By.CSS_SELECTOR, "li.hit mark")  # highlighted snippets
    facets = browser.find_element(By.CSS_SELECTOR, "aside.facets").text
    assert LOBBY in facets and SECRET in facets and "carol" in facets
    # a count stays whole beside a room name too long for the column (it broke digit by digit)
    count_lines = browser.execute_script("""
        const row = document.querySelector('aside.facets li').cloneNode(true);
        row.querySelector('a').textContent = 'a-room-with-a-name-far-too-long-for-this-column@conference.example.org';
        row.querySelector('.count').textContent = '12345';
        document.querySelector('aside.facets ul').appendChild(row);
        const range = document.createRange();
        range.selectNodeContents(row.querySelector('.count'));
        const lines = range.getClientRects().length;
        row.remove();
        return lines;""")
    assert count_lines == 1
    # compliance sees the removed message, marked
    retracted = [h for h in hits if RETRACTED in h.text]
    assert retracted and "RETRACTED" in retracted[0].text.upper()
    browser.set_window_size(1280, 1000)
    keep(browser, screenshot_dir, "search.png")
    failed = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not failed, failed  # nothing the pages ask for is missing (the browser's favicon.ico was)

    hit = next(h for h in browser.find_elements(By.CSS_SELECTOR, "li.hit") if CORRECTED in h.text)
    position = hit.find_element(By.CSS_SELECTOR, "a.hit-link").get_attribute("href").rsplit("#l", 1)[1]
    hit.find_element(By.CSS_SELECTOR, "a.hit-link").click()
    target = wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "li.line.target")))
    assert target.get_attribute("id") == f"l{position}"
    assert CORRECTED in target.text and "EDITED" in target.text.upper()
    target.find_element(By.CSS_SELECTOR, "details.versions summary").click()
    assert EDITED in target.find_element(By.CSS_SELECTOR, "details.versions").text  # edit history
    transcript = browser.find_element(By.CSS_SELECTOR, "ol.lines").text
    assert "bob joined" in transcript and "carol left" in transcript  # occupant lines
    assert "archive gap" in browser.find_element(By.CSS_SELECTOR, "li.line.gap").text
    assert XSS_BODY in transcript  # shown as text
    no_script_ran(browser)
    browser.execute_script("document.querySelector('section.transcript').scrollIntoView()")
    keep(browser, screenshot_dir, "transcript.png")

    chart = browser.find_element(By.CSS_SELECTOR, "svg.presence-chart")
    rows = [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.nick")]
    assert rows == ["alice", "bob", "carol", "dave", XSS_NICK]
    # click at 10:30 (the plot spans the day from x=150 to x=940 of 960)
    width = chart.size["width"]
    x = 150 + 790 * 10.5 / 24
    ActionChains(browser).move_to_element_with_offset(chart, int(x - width / 2), 0).click().perform()
    who = wait(browser, EC.text_to_be_present_in_element((By.ID, "who-was-here"), "At 2024-05-01 10:"))
    assert who
    here = browser.find_element(By.ID, "who-was-here").text
    for expected in ("alice (available)", "bob (away)", "carol (available)", "dave (dnd)", f"{XSS_NICK} (available)"):
        assert expected in here
    assert "at=2024-05-01T10" in browser.current_url
    no_script_ran(browser)
    keep(browser.find_element(By.CSS_SELECTOR, "section.presence"), screenshot_dir, "presence.png")

    browser.get(browser.current_url)  # the same moment, answered by the server (no script needed)
    assert "dave (dnd)" in browser.find_element(By.ID, "who-was-here").text


def test_a_site_user_sees_only_permitted_rooms_and_removed_messages_as_tombstones(browser, site):
    base, tokens = site
    sign_in(browser, base, tokens["site"], user="sam")
    search_until_found(browser, base, "deploy")
    results = browser.find_element(By.CSS_SELECTOR, "section.results").text
    assert "secret deploy plans" not in results and SECRET not in results
    assert RETRACTED not in results
    assert SECRET not in browser.find_element(By.CSS_SELECTOR, "aside.facets").text
    assert SECRET not in browser.find_element(By.CSS_SELECTOR, "select[name=room]").text

    browser.get(base + "/rooms")
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.room")]
    assert listed == [LOBBY]

    browser.get(f"{base}/rooms/{SECRET}")
    assert browser.find_element(By.CSS_SELECTOR, "h1.error-status").text == "Not found"
    assert "merger" not in browser.page_source
    browser.get(f"{base}/rooms/{SECRET}?around=x1")
    assert browser.find_element(By.CSS_SELECTOR, "h1.error-status").text == "Not found"
    browser.get(f"{base}/widget/{SECRET}")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "status"), "not available"))
    assert "merger" not in browser.page_source

    browser.get(f"{base}/rooms/{LOBBY}?day=2024-05-01")
    tombstone = browser.find_element(By.CSS_SELECTOR, "li.line.removed")
    assert "message removed" in tombstone.text and "hunter2" not in browser.page_source
    assert "@localhost" not in browser.find_element(By.CSS_SELECTOR, "ol.lines").text  # no real JIDs


def test_the_widget_escapes_what_it_shows(browser, site):
    base, tokens = site
    sign_in(browser, base, tokens["compliance"])
    browser.get(f"{base}/widget/{LOBBY}")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "activity"), "late check"))
    activity = browser.find_element(By.ID, "activity").text
    assert XSS_BODY in activity and XSS_NICK in activity
    assert "hunter2" not in activity and "message removed" in activity  # the ordinary view, even for compliance
    (link,) = browser.find_elements(By.CSS_SELECTOR, "#activity a")  # the one http(s) address; not javascript:
    assert link.get_attribute("href") == DASHBOARDS and link.get_attribute("rel") == "noopener noreferrer nofollow"
    assert UNSAFE_LINK in activity
    no_script_ran(browser)


def test_sign_in_cookie_csrf_and_security_headers(browser, site):
    base, tokens = site
    browser.delete_all_cookies()
    browser.get(base + "/")
    assert "/signin" in browser.current_url  # pages need a signed-in caller
    browser.find_element(By.ID, "token").send_keys("cat_not-a-token")
    browser.find_element(By.ID, "signin").click()
    error = wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "p.error")))  # after the post's reload
    assert "not valid" in error.text

    sign_in(browser, base, tokens["compliance"])
    cookie = browser.get_cookie("chat_archive_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # plain http here
    assert tokens["compliance"] not in json.dumps(browser.get_cookies())

    # A form posted without its CSRF token (as another site would) is refused.
    forged = urllib.request.Request(
        base + "/signin", data=f"token={tokens['compliance']}".encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=5)
    assert refused.value.code == 403

    with urllib.request.urlopen(base + "/signin", timeout=5) as page:
        policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    with urllib.request.urlopen(f"{base}/widget/{LOBBY}", timeout=5) as page:
        assert "frame-ancestors 'self' https://collab.example.org" in page.headers["Content-Security-Policy"]


def test_a_hit_opens_in_context_marked_its_link_copies_and_times_show_in_the_readers_zone(browser, site):
    base, tokens = site
    sign_in(browser, base, tokens["compliance"])
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"})  # UTC+05:30
    try:
        search_until_found(browser, base, "dashboards")
        hit = browser.find_element(By.CSS_SELECTOR, "li.hit")
        when = hit.find_element(By.CSS_SELECTOR, "time")
        assert when.text == "2024-05-01 12:06"  # said at 06:36 UTC
        assert when.get_attribute("title").startswith("2024-05-01 06:36:00 UTC")  # seconds and UTC on hover

        browser.execute_cdp_cmd(
            "Browser.grantPermissions", {"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}
        )
        link = hit.find_element(By.CSS_SELECTOR, "a.hit-link")
        assert link.text.startswith("Open in context")
        hit.find_element(By.CSS_SELECTOR, "button.copy-link").click()
        wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "li.hit button.copy-link"), "Link copied"))
        copied = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0])")
        assert copied == link.get_attribute("href")

        link.click()
        target = wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "li.line.target")))
        assert [m.text for m in target.find_elements(By.CSS_SELECTOR, ".body mark")] == ["dashboards"]
        assert target.find_element(By.CSS_SELECTOR, "a.time time").text == "12:06:00"
        (address,) = target.find_elements(By.CSS_SELECTOR, ".body a")
        assert address.get_attribute("href") == DASHBOARDS
        assert address.get_attribute("rel") == "noopener noreferrer nofollow"
        assert UNSAFE_LINK in target.text and not browser.find_elements(By.CSS_SELECTOR, "a[href^='javascript']")
        no_script_ran(browser)
    finally:
        browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})


def test_the_api_docs_page_shows_every_endpoint_from_a_viewer_the_app_serves(browser, site):
    base, _ = site
    browser.get(base + "/docs/api")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock")), timeout=20)
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/v1/search", "/api/v1/rooms/{room}/transcript", "/healthz"} <= paths
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(base) for name in loaded)  # nothing from a CDN or any other host
    refused = [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]
    assert refused == []
    browser.find_element(By.CSS_SELECTOR, ".opblock-summary").click()  # an endpoint opened: parameters, responses
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock-body .parameters, .opblock-body .responses-wrapper")))
    assert serious_violations(browser) == [], "\n".join(serious_violations(browser))


def test_the_presence_chart_answers_from_the_keyboard(browser, site):
    base, tokens = site
    sign_in(browser, base, tokens["compliance"])
    browser.get(f"{base}/rooms/{LOBBY}?day=2024-05-01")
    chart = browser.find_element(By.CSS_SELECTOR, "svg.presence-chart.wide")
    browser.execute_script("arguments[0].focus()", chart)
    assert browser.switch_to.active_element == chart
    chart.send_keys(Keys.HOME)  # 00:00: before the archive saw the room (its first event, 06:00), as the API says
    wait(browser, EC.text_to_be_present_in_element((By.ID, "who-was-here"), "At 2024-05-01 00:00:00 UTC"))
    assert "not known: the archive of this room begins at 2024-05-01T06:00:00Z" in browser.find_element(
        By.ID, "who-was-here").text
    for _ in range(6):  # 06:00: alice
        chart.send_keys(Keys.SHIFT + Keys.ARROW_RIGHT)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "who-was-here"), "At 2024-05-01 06:00:00 UTC"))
    assert "alice (available)" in browser.find_element(By.ID, "who-was-here").text
    for _ in range(4):
        chart.send_keys(Keys.SHIFT + Keys.ARROW_RIGHT)
    chart.send_keys(Keys.ARROW_RIGHT)  # ten hours on, by the hour, and five minutes
    wait(browser, EC.text_to_be_present_in_element((By.ID, "who-was-here"), "At 2024-05-01 10:05:00 UTC"))
    here = browser.find_element(By.ID, "who-was-here").text
    assert "alice (available)" in here and "bob (away)" in here and "dave (dnd)" in here
    assert "at=2024-05-01T10%3A05%3A00Z" in browser.current_url
