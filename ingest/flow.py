"""Whether the listener reads from the server now, and asking the server things in a way back-pressure cannot fail.

While the writer's queue is full the listener stops reading from the server (``writer``): the server's answers
then wait unread in the connection, so a request's time could run out though the server answered. So every request
the listener makes of the server goes through ``answered``: made once reading, and made again when its time ran
out while reading was paused at some point (a late answer to the request given up is ignored, as slixmpp ignores
every answer to a request it no longer waits for). Only a request that went unanswered while the listener read
counts as unanswered: a refused join, a room taken for unavailable, a dead connection (``keep_alive``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from slixmpp.exceptions import IqTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")


class InputFlow:
    """Reading paused or not (set in the listener's loop only), and how many pauses began so far."""

    def __init__(self):
        self._reading = asyncio.Event()
        self._reading.set()
        self._pauses = 0

    @property
    def paused(self) -> bool:
        return not self._reading.is_set()

    def set_paused(self, paused: bool) -> None:
        if paused and not self.paused:
            self._pauses += 1
            self._reading.clear()
        elif not paused:
            self._reading.set()

    async def reading(self) -> None:
        """Return once reading from the server (at once unless paused)."""
        await self._reading.wait()

    def mark(self) -> int:
        return self._pauses

    def paused_since(self, mark: int) -> bool:
        """Whether reading was paused at any time since ``mark`` was taken."""
        return self.paused or self._pauses != mark


def timed_out(error: BaseException) -> bool:
    """Whether a request failed for want of an answer in time (rather than with the server's answer)."""
    return isinstance(error, (IqTimeout, asyncio.TimeoutError)) or getattr(error, "condition", None) == "timeout"


async def answered(flow: InputFlow | None, request: Callable[[], Awaitable[T]]) -> T:
    """``request()`` (which must make a new request each call), once reading; made again while it times out with
    reading paused meanwhile. Without a ``flow`` (a one-off session, never paused), just ``request()``."""
    if flow is None:
        return await request()
    while True:
        await flow.reading()
        mark = flow.mark()
        try:
            return await request()
        except Exception as e:
            if not (timed_out(e) and flow.paused_since(mark)):
                raise
            log.info("no answer from the server while reading was paused (%s): asking again once reading", e)


async def keep_alive(client, flow: InputFlow, interval: float, timeout: float) -> str:
    """Ping the server every ``interval`` seconds until it leaves one unanswered for ``timeout`` seconds of reading;
    return why the connection is taken for dead. A ping the server answered while reading was paused is not that:
    the keepalive checks the server, and the server is fine (the pause is ours)."""
    ping = client.plugin["xep_0199"]
    while True:
        await asyncio.sleep(interval)
        try:
            await answered(flow, lambda: ping.ping(timeout=timeout))
        except IqTimeout:
            return f"the server left a ping unanswered for {timeout:g} s"
