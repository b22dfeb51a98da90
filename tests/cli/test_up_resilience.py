"""`chat-archive up` keeps running through a PostgreSQL restart under live traffic, and loses nothing.

PostgreSQL is shared with the other tests running at the same time, so it is not
restarted itself: `up` reaches it through a proxy that the test cuts (every
connection closed, new ones refused) and restores, which is what `up` sees of a
restart."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from archive.application import open_event_store
from tests.ingest.helpers import Traffic, archived_stanza_ids
from tests.services.prosody import LISTENER, PASSWORD, unique_room, wait_for
from tests.services.tcp_proxy import TcpProxy

CLI = str(Path(sys.executable).with_name("chat-archive"))


def config_file(path: Path, prosody, store_url: str, room: str) -> Path:
    path.write_text(f"""
[xmpp]
jid = "{LISTENER}@{prosody.domain}"
password = "{PASSWORD}"
host = "127.0.0.1"
port = {prosody.port}
tls = false
muc_services = ["{prosody.muc_service}"]
include = ["{room}"]
poll_interval = 0.3
status_file = "{path.parent}/status.json"

[store]
url = "{store_url}"

[index]
path = "{path.parent}/index"
commit_interval = 0.2

[projections]
commit_interval = 0.2
""")
    return path


def healthz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def status(config: Path) -> tuple[int, dict]:
    result = subprocess.run([CLI, "--config", str(config), "status", "--json"], capture_output=True, text=True, timeout=60)
    return result.returncode, json.loads(result.stdout)


def test_up_survives_a_postgresql_restart_under_load_with_no_event_lost(prosody, people, postgres_url, tmp_path):
    users = [people["alice"], people["bob"]]
    room = unique_room(prosody, f"pg{uuid.uuid4().hex[:6]}")
    users[0].create_room(room, "alice")
    users[1].join(room, "bob")
    with TcpProxy("127.0.0.1", 5432) as proxy:
        through_proxy = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        config = config_file(tmp_path / "up.toml", prosody, through_proxy, room)
        direct = config_file(tmp_path / "direct.toml", prosody, postgres_url, room)  # for `status` during the cut
        process = subprocess.Popen(
            [CLI, "--config", str(config), "up", "--port", "0"], text=True,
            stdout=subprocess.PIPE, stderr=open(tmp_path / "up.log", "w"),
        )  # fmt: skip
        try:
            url = re.search(r"on (http://\S+)/", process.stdout.readline()).group(1)
            wait_for(lambda: status(direct)[1]["listener"] and room in status(direct)[1]["listener"]["rooms_joined"],
                     30, message="up to join the room")
            traffic = Traffic(users, [room]).start()
            try:
                traffic.sent_at_least(20)
                proxy.cut()  # PostgreSQL "restarts" under load
                traffic.sent_at_least(20)
                wait_for(lambda: healthz(url)[0] == 503, 20, message="/healthz to report the store errors")
                code, degraded = status(direct)
                assert code == 1 and degraded["liveness"]["state"] == "behind", degraded["liveness"]
                traffic.sent_at_least(10)
                proxy.restore()
                traffic.sent_at_least(20)
            finally:
                traffic.stop()
            code, health = healthz(url)
            wait_for(lambda: healthz(url) == (200, {"status": "ok", "parts": healthz(url)[1]["parts"]}), 30,
                     message="/healthz ok again")
            with open_event_store(postgres_url) as store:
                wait_for(lambda: set(archived_stanza_ids(store, room)) >= set(traffic.sent[room]), 30,
                         message="every message archived")
                archived = archived_stanza_ids(store, room)
                head = store.head()
            assert len(archived) == len(set(archived)), "a message archived twice"
            assert set(archived) == set(traffic.sent[room])
            wait_for(lambda: all(p["position"] == head for p in status(direct)[1]["projections"]), 30,
                     message="projections and index caught up")
            # `status` judges the listener by the file it writes about once a second: the recovery reaches the
            # file a moment after /healthz sees it, later on a loaded machine, never much later.
            deadline = time.monotonic() + 15
            while (checked := status(direct))[0] != 0:
                assert time.monotonic() < deadline, checked[1]["liveness"]
                time.sleep(0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, (tmp_path / "up.log").read_text()[-3000:]
    log = (tmp_path / "up.log").read_text()
    assert "Traceback" not in log, log[-3000:]
