"""The rebuild an index owes after a purge applied to another one (``SearchIndexProjection.rebuild_owed``),
run beside the live indexer: the index keeps taking new messages while a fresh copy is built from the log,
then the indexer follows the swap, as it follows `chat-archive rebuild search`'s."""

from __future__ import annotations

import logging
import threading

from archive.errors import ChatArchiveError
from archive.store import EventStore

from ..rebuild import RebuildStopped, rebuild
from .projection import SearchIndexProjection

log = logging.getLogger(__name__)
RETRY_AFTER = 10.0  # seconds a failed rebuild waits before the indexer may start another


class PurgeRebuild:
    """At most one such rebuild at a time, started by ``ensure`` when the live generation owes one."""

    def __init__(self, store: EventStore, on_error=None):
        self.store, self.on_error = store, on_error
        self._thread: threading.Thread | None = None

    def ensure(self, live: SearchIndexProjection, stop: threading.Event) -> None:
        """Start the rebuild if ``live``'s generation owes one and none runs."""
        if (self._thread is None or not self._thread.is_alive()) and live.rebuild_owed():
            self._thread = threading.Thread(target=self._run, args=(live.sibling(), stop),
                                            name="search-purge-rebuild", daemon=True)
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _run(self, target: SearchIndexProjection, stop: threading.Event) -> None:
        log.warning("search index %s: a purge was applied to another index; rebuilding this one from the log "
                    "(it serves and follows the log meanwhile)", target.directory)
        try:
            rebuild(self.store, [target], stop=stop)
            target.location.drop_replaced()  # it holds what was purged
        except RebuildStopped:
            return  # the generation still owes it: the next start rebuilds
        except ChatArchiveError as e:
            log.warning("search index rebuild after a purge failed: %s (tried again in %.0f s)", e, RETRY_AFTER)
            if self.on_error:
                self.on_error(f"search index rebuild after a purge: {e}")
            stop.wait(RETRY_AFTER)
            return
        finally:
            target.close()
        if self.on_error:
            self.on_error(None)
        log.warning("search index rebuilt after the purge")
