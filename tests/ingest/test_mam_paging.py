"""Paging a room's archive (``ingest.mam``) against a server that ends its paging early, without network.

A real Prosody marks every query's last page ``complete="true"`` (the listener's tests against it read whole
archives); the archive played here gets that wrong, as another server could: the reader must say so, not stop.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from xml.etree import ElementTree as ET

import pytest

from ingest.mam import ArchiveQueryError, archive_pages
from ingest.xmlutil import MAM, RSM, q

ROOM = "lobby@conference.localhost"


class ScriptedArchive:
    """A client whose room archive answers each query with the next page of ``pages``: (result ids, whether the
    page says complete, its ``<last>``). Records the ``after`` of every query."""

    def __init__(self, pages: list[tuple[list[str], bool, str | None]]):
        self.pages, self.afters, self.handlers = list(pages), [], {}

    def make_iq_set(self, ito: str):
        archive = self

        class Query:
            xml = ET.Element("{jabber:client}iq", {"type": "set", "to": ito})

            async def send(self, timeout: float):
                return archive.answer(self.xml)

        return Query()

    def register_handler(self, handler) -> None:
        self.handlers[handler.name] = handler

    def remove_handler(self, name: str) -> None:
        del self.handlers[name]

    def answer(self, iq: ET.Element) -> SimpleNamespace:
        query = iq.find(q(MAM, "query"))
        self.afters.append(query.findtext(f"{q(RSM, 'set')}/{q(RSM, 'after')}"))
        ids, complete, last = self.pages.pop(0)
        for sid in ids:
            result = SimpleNamespace(xml=ET.fromstring(
                f'<message xmlns="jabber:client" from="{ROOM}">'
                f'<result xmlns="{MAM}" queryid="{query.get("queryid")}" id="{sid}"/></message>'
            ))
            for handler in list(self.handlers.values()):
                if handler.match(result):
                    handler.run(result)
        fin = ET.Element(q(MAM, "fin"), {"complete": "true"} if complete else {})
        if last:
            ET.SubElement(ET.SubElement(fin, q(RSM, "set")), q(RSM, "last")).text = last
        reply = ET.Element("{jabber:client}iq", {"type": "result"})
        reply.append(fin)
        return SimpleNamespace(xml=reply)


def read(archive: ScriptedArchive, after: str | None = None) -> tuple[list[list[str]], ArchiveQueryError | None]:
    """The pages read (as their result ids), and the error that ended the reading, if any."""

    async def scenario():
        pages = []
        try:
            async for page in archive_pages(archive, ROOM, after=after):
                pages.append([r.find(q(MAM, "result")).get("id") for r in page])
        except ArchiveQueryError as e:
            return pages, e
        return pages, None

    return asyncio.run(scenario())


def test_the_archive_is_read_page_after_page_until_a_page_says_it_is_complete():
    archive = ScriptedArchive([(["a", "b"], False, "b"), (["c"], False, "c"), ([], True, None)])
    assert read(archive, after="anchor") == ([["a", "b"], ["c"]], None)
    assert archive.afters == ["anchor", "b", "c"]


@pytest.mark.parametrize(
    "second_page, why",
    [
        (([], False, None), "an empty page"),
        ((["c"], False, None), "no <last>"),
        ((["c"], False, "b"), "the page after b again"),
    ],
)
def test_paging_that_ends_before_the_archive_says_complete_is_an_error(second_page, why):
    """Failed before: the reading stopped there as if it had read all, and a catch-up, its reconciliation or
    ``verify`` confirmed a span it had not read to its end."""
    pages, error = read(ScriptedArchive([(["a", "b"], False, "b"), second_page]))
    assert pages == [["a", "b"], *([["c"]] if second_page[0] else [])], "what was read is given"
    assert error is not None and f"paging ended before complete ({why})" in str(error)
