"""How far the listener's clock is from the XMPP server's, asked at every connect (XEP-0202 Entity Time).

Live copies of messages carry their receive time on the listener's clock; the room's archive (MAM, the join's
history) stamps them on the server's. The catch-up compares the two over a span (``catchup.store_read_start``)
and the store finds duplicates within ``archive.idempotency.WINDOW`` of each other: both hold only while the
clocks roughly agree, so the offset is measured and shown rather than assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ET

from archive.idempotency import WINDOW

from .flow import InputFlow, answered
from .xmlutil import q

log = logging.getLogger(__name__)

TIME_NS = "urn:xmpp:time"
SKEW_WARN = timedelta(seconds=30)  # NTP keeps clocks within a second: more is a clock to fix
# Past this a live copy and the archive's copy of one message may fall more than the idempotency window apart
# (the other half of the window is left to delivery delay): both stored.
SKEW_UNSAFE = timedelta(seconds=WINDOW) / 2

Clock = Callable[[], datetime]  # the current time, aware UTC
TIME_TIMEOUT = 10.0  # seconds the server's time may take to come


def clock_offset(sent: datetime, received: datetime, server_time: datetime) -> timedelta:
    """The server's clock less the listener's: the server read its clock about halfway through the round trip."""
    return server_time - (sent + (received - sent) / 2)


def skew_problem(offset: float | None) -> str | None:
    """What a measured offset (seconds, the server's clock less the listener's) puts at risk, if anything."""
    if offset is None or abs(offset) <= SKEW_WARN.total_seconds():
        return None
    side = "behind" if offset > 0 else "ahead of"
    said = f"the listener's clock is {abs(offset):.0f} s {side} the XMPP server's"
    if abs(offset) >= SKEW_UNSAFE.total_seconds():
        return (f"{said}: live copies and the room archive's copies of a message may be stored twice "
                f"(duplicates are found within {WINDOW // 60} minutes): synchronise the clocks (NTP)")
    return f"{said}: synchronise the clocks (NTP)"


def server_time(reply) -> datetime | None:
    """The UTC time of an Entity Time answer, or None if it holds none that parses."""
    text = reply.findtext(f"{q(TIME_NS, 'time')}/{q(TIME_NS, 'utc')}")
    try:
        moment = datetime.fromisoformat(text.strip()) if text else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


async def measure_offset(
    client, clock: Clock, timeout: float | None = None, flow: InputFlow | None = None
) -> tuple[float | None, str | None]:
    """Ask the listener's server its time: (offset in seconds, None), or (None, why it is unknown).
    Asked again after a pause of reading (``flow``): an answer read late would measure the pause."""
    timeout = TIME_TIMEOUT if timeout is None else timeout

    async def ask():
        iq = client.make_iq_get(ito=client.boundjid.domain)
        ET.SubElement(iq.xml, q(TIME_NS, "time"))
        sent = clock()
        return sent, await iq.send(timeout=timeout)

    try:
        sent, reply = await answered(flow, ask)
    except IqError as e:
        return None, f"the server does not tell its time (XEP-0202: {e.iq['error']['condition']})"
    except IqTimeout:
        return None, f"the server did not tell its time within {timeout:.0f} s (XEP-0202)"
    received = clock()
    told = server_time(reply.xml)
    if told is None:
        return None, "the server's answer to an XEP-0202 time request holds no valid UTC time"
    return clock_offset(sent, received, told).total_seconds(), None
