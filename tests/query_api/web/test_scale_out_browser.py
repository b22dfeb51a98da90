"""Scale-out on one PostgreSQL store, in headless Chromium: a listener, a views runner, and two API hosts
(`serve --workers 2`), each with its own search index kept by its own `project --search-only`.

Sessions and tickets made by one process are accepted by every other (the browser sends the same cookie
to both hosts: cookies ignore the port), a session signed out on one is refused by all, the widget's join-and-talk works whichever process serves its
polls, and both hosts answer the same search the same way once their indexes have caught up."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from chat_archive.prosody import ProsodyServer
from chat_archive.xmpp_users import XmppUsers
from query_api.roles import Role
from query_api.tokens import open_token_store
from tests.services.postgres import fresh_schema_url
from tests.services.prosody import LISTENER, PASSWORD

from .server import ServerProcess, listener_config
from .test_widget_browser import EmbeddingSite, room_of_alice

HOSTS = ("a", "b")
INDEX_COMMIT_SECONDS = 0.2
FRESHNESS_SECONDS = 15  # commit interval + reader reload, with room for a loaded machine
CACHE_SECONDS = 1.0  # how long a process may reuse a token or sign-out check (the default is 5)


@pytest.fixture(scope="module")
def schema_url():
    with fresh_schema_url() as url:
        yield url


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, schema_url):
    """Prosody, then `listen`, `project --no-search`, and per host `project --search-only` + `serve --workers 2`."""
    directory = tmp_path_factory.mktemp("scale-out")
    prosody = ProsodyServer(directory / "prosody", admins=(f"{LISTENER}@localhost",))
    for user in (LISTENER, "alice", "sam"):
        prosody.register(user, PASSWORD)
    prosody.start()
    users = XmppUsers("127.0.0.1", prosody.port)
    room, alice, heard = room_of_alice(users, prosody, "scale")
    tokens = open_token_store(schema_url)
    issued = {"compliance": tokens.create(Role.COMPLIANCE)[0], "site": tokens.create(Role.SITE, (room,))[0]}
    tokens.close()
    embedding = EmbeddingSite()
    common = {
        "xmpp": listener_config(prosody),
        "store": {"url": schema_url},
        "projections": {"commit_interval": 0.2},
        "api": {"widget_frame_ancestors": [embedding.origin], "widget_websocket_url": prosody.websocket_url,
                "token_cache_seconds": CACHE_SECONDS},
    }  # fmt: skip

    def host_config(host: str) -> dict:
        return {**common, "index": {"path": str(directory / f"index-{host}"), "commit_interval": INDEX_COMMIT_SECONDS}}

    processes = [
        ServerProcess(directory, host_config("a"), ["listen"], name="listen"),
        ServerProcess(directory, host_config("a"), ["project", "--no-search"], name="views"),
    ]
    for host in HOSTS:
        processes.append(ServerProcess(directory, host_config(host), ["project", "--search-only"], name=f"index-{host}"))
    serving = {host: ServerProcess(directory, host_config(host), ["serve", "--workers", "2", "--port", "0"], name=f"serve-{host}")
               for host in HOSTS}  # fmt: skip
    RUNNING[:] = [*processes, *serving.values()]
    try:
        for process in processes:
            process.start(serves=False)
        bases = {host: server.start() for host, server in serving.items()}
        yield {
            "room": room, "bases": bases, "tokens": issued, "alice": alice, "heard": heard,
            "embedding": embedding, "processes": [*processes, *serving.values()],
        }  # fmt: skip
    finally:
        for process in [*serving.values(), *reversed(processes)]:
            process.stop()
        embedding.close()
        users.close()
        prosody.stop()


def wait_until(predicate, what: str, timeout: float = FRESHNESS_SECONDS):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{_logs()}")
        time.sleep(0.1)
    return value


RUNNING: list[ServerProcess] = []  # this module's processes, whose logs explain a failure


def _logs() -> str:
    return "\n".join(f"--- {p.log_file.name}\n{p.log()[-1500:]}" for p in RUNNING)


def api_get(base: str, path: str, token: str, user: str | None = None):
    headers = {"Authorization": f"Bearer {token}", **({"X-Chat-Archive-User": user} if user else {})}
    with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as response:
        return response.read().decode()


def search(base: str, token: str, text: str) -> list[tuple]:
    found = json.loads(api_get(base, "/api/v1/search?q=" + urllib.parse.quote(text), token))
    return [(hit["room"], hit["nick"], hit["body"], hit["position"]) for hit in found["hits"]]


def test_pages_signed_in_on_one_host_are_served_by_every_process_of_both(browser, deployment):
    a, b = deployment["bases"]["a"], deployment["bases"]["b"]
    room = deployment["room"]
    deployment["alice"].say(room, "scale-out page check")
    browser.delete_all_cookies()
    browser.get(a + "/signin")
    browser.find_element(By.ID, "token").send_keys(deployment["tokens"]["compliance"])
    browser.find_element(By.ID, "signin").click()
    WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.ID, "q")))
    # Each page load lands on either worker of either host: every one must know the session.
    for i in range(8):
        base = (a, b)[i % 2]
        browser.get(f"{base}/rooms")
        WebDriverWait(browser, 10).until(lambda d: room in d.find_element(By.TAG_NAME, "main").text)
        assert "Sign out" in browser.page_source and "/signin" not in browser.current_url
    # A form made by host b (its CSRF token bound to the session host a signed) signs out.
    copied = browser.get_cookie("chat_archive_session")["value"]
    browser.get(b + "/")
    browser.find_element(By.CSS_SELECTOR, "form[action='/signout'] button").click()
    WebDriverWait(browser, 10).until(lambda d: "/signin" in d.current_url)
    browser.get(a + "/rooms")
    assert room not in browser.find_element(By.TAG_NAME, "main").text
    # The session ended on the server: the cookie copied before is sent to sign in by every process
    # (those that checked it just before may reuse that answer for CACHE_SECONDS).
    browser.add_cookie({"name": "chat_archive_session", "value": copied, "path": "/"})
    for i in range(4):
        base = (a, b)[i % 2]
        WebDriverWait(browser, 10).until(lambda d: d.get(f"{base}/rooms") or "/signin" in d.current_url)
        assert room not in browser.find_element(By.TAG_NAME, "main").text


def test_the_widget_ticketed_by_one_host_joins_and_talks_through_the_other(browser, deployment):
    a, b = deployment["bases"]["a"], deployment["bases"]["b"]
    room = deployment["room"]
    request = urllib.request.Request(
        a + "/widget/tickets",
        data=json.dumps({"room": room, "jid": "sam@localhost", "password": PASSWORD, "nick": "Sam"}).encode(),
        headers={"Authorization": f"Bearer {deployment['tokens']['site']}", "X-Chat-Archive-User": "sam",
                 "Content-Type": "application/json"},
        method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        url = json.load(response)["url"]
    browser.get(deployment["embedding"].embed(url.replace(a, b)))  # issued by host a, served by host b
    browser.switch_to.frame(browser.find_element(By.ID, "w"))
    try:
        WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), "Live"))
        before = f"before joining {uuid.uuid4().hex[:6]}"
        deployment["alice"].say(room, before)  # the archive's feed, polled from both of b's workers
        WebDriverWait(browser, FRESHNESS_SECONDS).until(lambda d: before in d.find_element(By.ID, "activity").text)
        browser.find_element(By.ID, "join-button").click()
        WebDriverWait(browser, 15).until(EC.text_to_be_present_in_element((By.ID, "status"), "In the room as Sam"))
        body = f"hello from behind two hosts {uuid.uuid4().hex[:6]}"
        browser.find_element(By.ID, "message").send_keys(body)
        browser.find_element(By.ID, "send").click()
        wait_until(lambda: f"Sam: {body}" in deployment["heard"], "alice to hear the widget")
        WebDriverWait(browser, 10).until(lambda d: body in d.find_element(By.ID, "activity").text)
        browser.find_element(By.ID, "leave").click()
        WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "join-button")))
    finally:
        browser.switch_to.default_content()
    for base in (a, b):  # the listener archived it; the views runner put it in the transcript both hosts read
        wait_until(lambda: body in api_get(base, f"/api/v1/rooms/{room}/transcript?format=text",
                                           deployment["tokens"]["compliance"]), f"the transcript on {base}")  # fmt: skip


def test_both_hosts_answer_a_search_the_same_way_from_their_own_indexes(deployment):
    a, b = deployment["bases"]["a"], deployment["bases"]["b"]
    word = f"zebra{uuid.uuid4().hex[:6]}"
    for n in range(3):
        deployment["alice"].say(deployment["room"], f"{word} number {n}")
    token = deployment["tokens"]["compliance"]
    hits = wait_until(lambda: len(found := search(a, token, word)) == 3 and found, f"host a to find {word}")
    assert wait_until(lambda: search(b, token, word) == hits and hits, "host b to answer as host a")
    directory = deployment["processes"][0].directory
    assert (directory / "index-a").is_dir() and (directory / "index-b").is_dir()  # two indexes, not one shared
