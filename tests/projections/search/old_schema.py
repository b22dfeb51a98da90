"""An index as the previous release (schema version one lower) left it: for the upgrade paths' tests."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import tantivy

from projections.search import SearchIndexProjection
from projections.search import documents
from projections.search.schema import FLAG_SET, SCHEMA, SCHEMA_VERSION


def downgrade(projection: SearchIndexProjection, version: int = SCHEMA_VERSION - 1) -> None:
    """Rewrite the live generation's meta document with an earlier schema ``version`` (the previous one), then close
    ``projection``."""
    writer = projection._open_writer()  # noqa: SLF001
    writer.delete_documents_by_query(tantivy.Query.term_query(SCHEMA, "meta", FLAG_SET))
    writer.add_document(documents.meta_document(projection.position(), version))
    writer.commit()
    projection.close()


def stored_as_schema_6(ts: int, jid: str | None, line) -> bytes:
    """``documents.stored`` as schema 6 stored a line: its JSON object alone (7 puts a hit's time and bare JID
    ahead of it)."""
    return msgspec.json.encode(line)


def store_blob_as_bytes(directory: Path) -> None:
    """Make the generation at ``directory`` declare ``blob`` as schema 5 did, a stored bytes field (6 stores it
    as text): what tantivy compares with the program's schema when it opens an index."""
    meta_file = directory / "meta.json"
    meta = json.loads(meta_file.read_bytes())
    for field in meta["schema"]:
        if field["name"] == "blob":
            field.update(type="bytes", options={"indexed": False, "fieldnorms": False, "fast": False, "stored": True})
    meta_file.write_text(json.dumps(meta))
