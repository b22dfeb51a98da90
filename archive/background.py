"""A part of a process that runs in a thread of its own (`up` runs several side by side).

``join()`` waits for it and re-raises what stopped it, so the composition root that
started it learns of a failure the same way whichever part failed.
"""

from __future__ import annotations

import threading


class Background:
    """Subclasses define ``run()``, and ``stopped_by(error)`` for what else a failure should do."""

    def __init__(self, name: str):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._guarded, name=name, daemon=True)

    @property
    def name(self) -> str:
        return self._thread.name

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        raise NotImplementedError

    def stopped_by(self, error: BaseException) -> None:
        """Called in the thread when ``run()`` raised ``error`` (before ``join()`` re-raises it)."""

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException as e:  # noqa: BLE001 - handed to whoever joins
            self._error = e
            self.stopped_by(e)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
