"""The rebuild an index owes after a purge applied to another one (``SearchIndexProjection.rebuild_owed``),
run beside the live indexer: the index keeps taking new messages while a fresh copy is built from the log,
then the indexer follows the swap, as it follows `chat-archive rebuild search`'s."""

from __future__ import annotations

import logging
import threading
import time

from archive.store import EventStore

from ..rebuild import RebuildStopped, rebuild
from .projection import SearchIndexProjection

log = logging.getLogger(__name__)
RETRY_AFTER = 10.0  # seconds after a failed rebuild before another may start


class PurgeRebuild:
    """At most one such rebuild at a time, started by ``ensure`` when the live generation owes one."""

    def __init__(self, store: EventStore, on_error=None):
        self.store, self.on_error = store, on_error
        self._thread: threading.Thread | None = None
        self._not_before = 0.0

    def ensure(self, live: SearchIndexProjection, stop: threading.Event) -> None:
        """Start the rebuild if ``live``'s generation owes one, none runs and none failed just now."""
        if self._thread is not None and self._thread.is_alive() or time.monotonic() < self._not_before:
            return
        if live.rebuild_owed():
            # The replaced generation is dropped at the swap: it holds what was purged.
            target = live.sibling(stop, keep_replaced=False)
            self._thread = threading.Thread(target=self._run, args=(target, stop), name="search-purge-rebuild",
                                            daemon=True)
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _run(self, target: SearchIndexProjection, stop: threading.Event) -> None:
        log.warning("search index %s: a purge was applied to another index; rebuilding this one from the log "
                    "(it serves and follows the log meanwhile)", target.directory)
        try:
            rebuild(self.store, [target], stop=stop)
        except RebuildStopped:
            return  # the generation still owes it: the next start rebuilds
        except BaseException as e:  # noqa: BLE001 - a panic of the index library too: logged, tried again later
            self._not_before = time.monotonic() + RETRY_AFTER
            log.exception("search index rebuild after a purge failed (tried again in %.0f s)", RETRY_AFTER)
            if self.on_error:
                self.on_error(f"search index rebuild after a purge: {e}")
            return
        finally:
            target.close()
        log.warning("search index rebuilt after the purge")
