"""XEP-0313 queries of a room's archive, paged with RSM (XEP-0059), over a slixmpp client.

slixmpp's own iterator ends silently on an error; a backfill must know whether
it got everything, so paging is done here: results are collected by query id
(and only from the room), a page ends with ``<fin>``, the next page starts
after its ``<last>``, and only ``complete="true"`` ends the query (``next_page``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from xml.etree import ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

from archive.times import format_time

from .flow import InputFlow, answered
from .xmlutil import MAM, RSM, q, split_jid

log = logging.getLogger(__name__)

DATA_FORMS = "jabber:x:data"
MAM_TIMEOUT = 30.0  # seconds a page of the archive may take to come


class ArchiveQueryError(Exception):
    """The room's archive could not be read; ``condition`` is the XMPP error condition."""

    def __init__(self, message: str, condition: str | None = None):
        super().__init__(message)
        self.condition = condition


class _ResultsOf(MatcherBase):
    """Matches MAM result messages of one query, sent by the queried room."""

    def __init__(self, room: str, query_id: str):
        super().__init__((room, query_id))

    def match(self, stanza) -> bool:
        room, query_id = self._criteria
        result = stanza.xml.find(q(MAM, "result"))
        if result is None or result.get("queryid") != query_id:
            return False
        try:
            return split_jid(stanza.xml.get("from"))[0] == room
        except ValueError:
            return False


def _query(client, room: str, query_id: str, after: str | None, start, end, page_size: int):
    iq = client.make_iq_set(ito=room)
    query = ET.SubElement(iq.xml, q(MAM, "query"), {"queryid": query_id})
    bounds = [(var, format_time(moment), None) for var, moment in (("start", start), ("end", end)) if moment]
    if bounds:
        form = ET.SubElement(query, q(DATA_FORMS, "x"), {"type": "submit"})
        for var, value, kind in (("FORM_TYPE", MAM, "hidden"), *bounds):
            field = ET.SubElement(form, q(DATA_FORMS, "field"), {"var": var, **({"type": kind} if kind else {})})
            ET.SubElement(field, q(DATA_FORMS, "value")).text = value
    rsm = ET.SubElement(query, q(RSM, "set"))
    ET.SubElement(rsm, q(RSM, "max")).text = str(page_size)
    if after:
        ET.SubElement(rsm, q(RSM, "after")).text = after
    return iq


async def archive_pages(
    client,
    room: str,
    *,
    after: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    page_size: int = 100,
    timeout: float | None = None,
    flow: InputFlow | None = None,
) -> AsyncIterator[list[ET.Element]]:
    """Yield the room's archived messages (MAM ``<result>`` wrappers), oldest first,
    a page at a time: after the archive id ``after``, or from ``start``, or all; up to ``end`` if given.
    A page whose answer was not read in time because reading was paused (``flow``) is asked for again.

    Raises ``ArchiveQueryError`` if any page fails (e.g. ``item-not-found`` when
    the archive does not know ``after``) or the paging ends before the archive says it is complete (``next_page``).
    """
    timeout = MAM_TIMEOUT if timeout is None else timeout
    while True:
        try:
            reply, results = await answered(flow, lambda: _page(client, room, after, start, end, page_size, timeout))
        except IqError as e:
            condition = e.iq["error"]["condition"]
            raise ArchiveQueryError(f"archive query to {room} failed: {condition} {e.text}", condition) from e
        except IqTimeout as e:
            raise ArchiveQueryError(f"archive query to {room} timed out", "timeout") from e
        fin = reply.xml.find(q(MAM, "fin"))
        if fin is None:
            raise ArchiveQueryError(f"archive query to {room}: reply without <fin>")
        if results:
            yield results
        after = next_page(room, fin, bool(results), after)
        if after is None:
            return


async def _page(client, room: str, after, start, end, page_size: int, timeout: float) -> tuple:
    """One page: (the query's answer, the results it sent before it). A query id of its own, so that a page asked
    again collects none of the results of the one given up."""
    query_id = uuid.uuid4().hex
    results: list[ET.Element] = []
    collector = Callback(f"mam-{query_id}", _ResultsOf(room, query_id), lambda s: results.append(s.xml))
    client.register_handler(collector)
    try:
        return await _query(client, room, query_id, after, start, end, page_size).send(timeout=timeout), results
    finally:
        client.remove_handler(collector.name)


def next_page(room: str, fin: ET.Element, results: bool, after: str | None) -> str | None:
    """Where the page after the one ``fin`` ends starts (its ``after``); None once the archive says it gave all.

    Only ``complete="true"`` says so (XEP-0313: the server MUST mark the page holding the last result; Prosody
    does, on every query, an empty one too). A page that ends otherwise without telling where the next one starts
    (no results, no ``<last>``, the page just read again) is an error: stopping there would pass part of the archive
    off as all of it, and the catch-up, reconciliation and ``verify`` would confirm a span they never read to its end.
    """
    if fin.get("complete") in ("true", "1"):
        return None
    last = fin.findtext(f"{q(RSM, 'set')}/{q(RSM, 'last')}")
    if not results or not last or last == after:
        why = "an empty page" if not results else "no <last>" if not last else f"the page after {after} again"
        raise ArchiveQueryError(f"archive query to {room}: paging ended before complete ({why})")
    return last
