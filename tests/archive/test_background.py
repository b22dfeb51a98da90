"""The thread parts of a process run in: a failure reaches whoever joins, after the part's own reaction."""

from __future__ import annotations

import threading

import pytest

from archive.background import Background


class Failing(Background):
    def __init__(self):
        super().__init__("failing")
        self.seen: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        raise RuntimeError("disk full")

    def stopped_by(self, error: BaseException) -> None:
        self.seen.append(str(error))
        self.done.set()


def test_join_re_raises_what_stopped_the_part_after_its_own_reaction():
    part = Failing()
    part.start()
    assert part.done.wait(5)
    with pytest.raises(RuntimeError, match="disk full"):
        part.join(5)
    assert part.seen == ["disk full"] and not part.is_alive() and part.name == "failing"


def test_a_part_that_ends_normally_joins_quietly():
    class Quick(Background):
        def run(self) -> None:
            pass

    part = Quick("quick")
    part.start()
    part.join(5)
    assert not part.is_alive()
