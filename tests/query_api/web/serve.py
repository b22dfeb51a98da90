"""A real server process for the browser tests: API + pages + widget, projections and index,
and the XMPP listener when ``[xmpp] jid`` is set; every part built by ``chat_archive.bootstrap``.

Run: ``python -m tests.query_api.web.serve CONFIG.toml``; prints ``listening on URL`` once
serving, and stops cleanly on SIGTERM. (``chat-archive serve`` serves the API alone.)
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from chat_archive import bootstrap
from chat_archive.config import load_config


def main(config_file: str) -> int:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(config_file)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    store = bootstrap.open_store(config)
    parts = [bootstrap.start_projections(config, store, stop), bootstrap.start_search_indexer(config, store, stop)]
    if config.xmpp.jid:
        parts.append(bootstrap.start_listener(config, store, stop))
    views = bootstrap.open_views(config, store)
    server = bootstrap.start_api(config, store, views, bootstrap.open_search_index(config), stop, port=0)
    print(f"listening on {server.url}", flush=True)
    while not stop.is_set() and all(part.is_alive() for part in parts):
        stop.wait(0.2)
    stop.set()
    server.join(10)
    for part in parts:
        part.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
