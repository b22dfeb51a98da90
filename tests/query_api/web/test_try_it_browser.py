"""The README's "Try it", walked in Chromium from a fresh `chat-archive up --demo`, at desktop and phone
size: sign in with what the page says, search, open a hit in context, join the widget as the demo account
and see the message arrive in the transcript. Every page passes axe-core with no serious violation and
fits the screen's width.

The demo keeps its store where `[store] url` says (SQLite in the directory by default): the walk runs on
SQLite at both sizes and on PostgreSQL (`CHAT_ARCHIVE_STORE_URL`) at desktop size; the phone size and the
dark scheme check layout, which no store changes, so they run once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from archive.application import open_event_store
from tests.services.axe import serious_violations
from tests.services.postgres import fresh_schema_url

from .server import keep

CLI = str(Path(sys.executable).with_name("chat-archive"))
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def demo(request, tmp_path_factory):
    """`chat-archive up --demo` in a directory of its own, as `./dev up` runs it, on the store kind
    the test is parametrized with: (url of the API, directory, store URL)."""
    cwd = tmp_path_factory.mktemp(f"try-it-{request.param}")
    (cwd / "tmp").mkdir()
    if request.param == "sqlite":  # the default `[store] url`, as a newcomer runs it
        yield from _up_demo(cwd, {}, f"sqlite:///{cwd}/data/events.sqlite")
    else:
        with fresh_schema_url() as store_url:
            yield from _up_demo(cwd, {"CHAT_ARCHIVE_STORE_URL": store_url}, store_url)


def _up_demo(cwd: Path, settings: dict[str, str], store_url: str):
    log = open(cwd / "up.log", "wb")
    process = subprocess.Popen(
        [CLI, "up", "--demo", "--port", "0"], cwd=cwd, stdout=subprocess.PIPE, stderr=log, text=True,
        env={**os.environ, "TMPDIR": str(cwd / "tmp"), "CHAT_ARCHIVE_INDEX_COMMIT_INTERVAL": "0.2", **settings},
    )  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + 90
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"`up --demo` ended: {(cwd / 'up.log').read_text()[-3000:]}")
            if "API and web pages on " in line:
                url = line.split()[-1].rstrip("/")
        yield url, cwd, store_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait(browser, condition, timeout: float = 20):
    return WebDriverWait(browser, timeout).until(condition)


def new_page_loaded(browser) -> bool:
    """True once the page marked with ``window.oldPage`` is replaced. Selenium's ``staleness_of`` asks
    about an element of the old page, and Chromium answers that question during the navigation with an
    "unhandled inspector error" instead of "stale element" (it failed CI once); a script has no element
    to lose, and an error while the page is swapped only means "not yet"."""
    try:
        return browser.execute_script("return window.oldPage === undefined && document.readyState === 'complete'")
    except WebDriverException:
        return False


def fits_the_screen(browser) -> None:
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{browser.current_url} is {overflow}px wider than the screen"


def accessible(browser) -> None:
    assert serious_violations(browser) == [], browser.current_url


@pytest.mark.parametrize("demo", ["sqlite"], indirect=True, scope="module")
@pytest.mark.parametrize("size", list(SIZES))
def test_the_readme_try_it_walk(browser, demo, size, screenshot_dir):
    walk(browser, demo, size, screenshot_dir)


@pytest.mark.parametrize("demo", ["postgresql"], indirect=True, scope="module")
def test_the_readme_try_it_walk_on_postgresql(browser, demo, screenshot_dir):
    walk(browser, demo, "desktop", screenshot_dir)


def walk(browser, demo, size: str, screenshot_dir: Path) -> None:
    url, cwd, store_url = demo
    browser.delete_all_cookies()
    browser.set_window_size(*SIZES[size])
    suffix = "" if size == "desktop" else "-phone"

    # 1. The front page asks to sign in and says with what.
    browser.get(url + "/")
    hint = wait(browser, EC.presence_of_element_located((By.ID, "demo-hint")))
    assert "demo sign-in token" in hint.text
    token = (cwd / browser.find_element(By.ID, "demo-token-file").text).read_text().strip()
    fits_the_screen(browser)
    accessible(browser)
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "signin").click()
    wait(browser, EC.presence_of_element_located((By.ID, "q")))

    # 2. Search (the demo people talk about deploys, builds, tests, ...).
    deadline = time.monotonic() + 30
    while not browser.find_elements(By.CSS_SELECTOR, "li.hit"):
        assert time.monotonic() < deadline, browser.find_element(By.TAG_NAME, "main").text[:2000]
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys("deploy OR build OR test OR review OR coffee OR bug OR merge")
        browser.execute_script("window.oldPage = true")
        browser.find_element(By.ID, "search-button").click()
        wait(browser, new_page_loaded)  # else the old page's answer is read while the new one loads
        wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "p.total, div.error")))
    fits_the_screen(browser)
    accessible(browser)
    if suffix:  # the desktop ones come from the seeded archive (test_pages_browser)
        browser.execute_script("window.scrollTo(0, document.querySelector('section.results').offsetTop - 10)")
        keep(browser, screenshot_dir, "search-phone.png")

    # 3. Open a hit in context: the transcript around it, the hit highlighted, the search's words marked.
    hit = browser.find_element(By.CSS_SELECTOR, "li.hit")
    link = hit.find_element(By.CSS_SELECTOR, "a.hit-link")
    position = link.get_attribute("href").rsplit("#l", 1)[1]
    browser.execute_script("arguments[0].scrollIntoView()", link)
    link.click()
    deadline = time.monotonic() + 30
    while not browser.find_elements(By.CSS_SELECTOR, "li.line.target"):
        # A fresh hit may be searchable before the transcript view has it: the page says so; reload.
        assert browser.find_elements(By.ID, "pending") and time.monotonic() < deadline, browser.current_url
        time.sleep(1)
        browser.refresh()
    target = browser.find_element(By.CSS_SELECTOR, "li.line.target")
    assert target.get_attribute("id") == f"l{position}" and target.find_elements(By.CSS_SELECTOR, ".body mark")
    fits_the_screen(browser)
    accessible(browser)
    if suffix:
        keep(browser, screenshot_dir, "transcript-phone.png")
    room_page = browser.current_url.split("?")[0]
    if size == "phone":
        chart = browser.find_element(By.CSS_SELECTOR, "svg.presence-chart.narrow")
        assert chart.is_displayed() and chart.size["width"] <= SIZES["phone"][0]
        assert not browser.find_element(By.CSS_SELECTOR, "svg.presence-chart.wide").is_displayed()
        keep(browser.find_element(By.CSS_SELECTOR, "section.presence"), screenshot_dir, "presence-phone.png")

    # 4. The rooms list.
    browser.get(url + "/rooms")
    assert len(browser.find_elements(By.CSS_SELECTOR, "a.room")) == 3
    fits_the_screen(browser)
    accessible(browser)
    keep(browser, screenshot_dir, f"rooms{suffix}.png")

    # 5. The room's live widget: join as the demo account the widget names, and talk.
    browser.get(room_page)
    browser.find_element(By.ID, "widget-link").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "status"), "Live"))
    backlog = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#activity li")]
    assert backlog, "the widget shows the room's recent activity"
    jid, password = (c.text for c in browser.find_elements(By.CSS_SELECTOR, ".demo-hint code"))
    fits_the_screen(browser)
    accessible(browser)
    browser.find_element(By.ID, "join-button").click()
    browser.find_element(By.ID, "jid").send_keys(jid)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "nick").send_keys(f"newcomer-{size}")
    browser.find_element(By.ID, "join-submit").click()
    wait(browser, EC.visibility_of_element_located((By.ID, "message")))
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#activity li")]
    assert shown[: len(backlog)] == backlog  # the backlog being read stays, and the join is marked after it
    assert [i for i, text in enumerate(shown) if text.startswith("You joined")][0] >= len(backlog)
    said = f"hello from the README walk {uuid.uuid4().hex[:8]}"
    browser.find_element(By.ID, "message").send_keys(said)
    browser.find_element(By.ID, "send").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "activity"), said))
    if suffix:
        keep(browser, screenshot_dir, "widget-phone.png")

    # 6. ... and it is in the room's transcript (the demo's views commit every few seconds).
    deadline = time.monotonic() + 40
    while True:
        browser.get(room_page)
        if said in browser.find_element(By.CSS_SELECTOR, "ol.lines").text:
            break
        assert time.monotonic() < deadline, "the message never reached the transcript"
        time.sleep(1)
    with open_event_store(store_url) as store:  # the walk went through the store it was meant to
        assert store.head() > 0


def sign_in_from_the_page(browser, url: str, cwd: Path) -> None:
    browser.delete_all_cookies()
    browser.get(url + "/signin")
    token = (cwd / browser.find_element(By.ID, "demo-token-file").text).read_text().strip()
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "signin").click()
    wait(browser, EC.presence_of_element_located((By.ID, "q")))


@pytest.mark.parametrize("demo", ["sqlite"], indirect=True, scope="module")
def test_dark_mode_keeps_contrast_and_a_260px_widget_keeps_the_room_address_whole(browser, demo):
    url, cwd, _ = demo
    browser.set_window_size(1280, 900)
    sign_in_from_the_page(browser, url, cwd)
    room = "lobby@conference.localhost"
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        for path in ("/?q=deploy", "/rooms", f"/rooms/{room}", f"/widget/{room}"):
            browser.get(url + path)
            background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
            assert background not in ("rgb(255, 255, 255)", "rgb(246, 247, 249)"), path  # the dark scheme is on
            accessible(browser)
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    browser.set_window_size(260, 600)
    browser.get(f"{url}/widget/{room}")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "status"), "Live"))
    assert browser.execute_script("return window.innerWidth") <= 260
    parts = browser.find_elements(By.CSS_SELECTOR, ".room-name .part")
    assert [p.text for p in parts] == ["lobby", "@conference.localhost"]
    for part in parts:  # each part on one line: the address breaks before its @ or not at all
        assert browser.execute_script("return arguments[0].getClientRects().length", part) == 1
    fits_the_screen(browser)
    browser.set_window_size(1280, 900)
