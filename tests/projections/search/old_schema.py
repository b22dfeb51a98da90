"""An index as the previous release (schema version one lower) left it: for the upgrade paths' tests."""

from __future__ import annotations

import tantivy

from projections.search import SearchIndexProjection
from projections.search import documents
from projections.search.schema import FLAG_SET, SCHEMA, SCHEMA_VERSION


def downgrade(projection: SearchIndexProjection) -> None:
    """Rewrite the live generation's meta document with the previous schema version, then close ``projection``."""
    writer = projection._open_writer()  # noqa: SLF001
    writer.delete_documents_by_query(tantivy.Query.term_query(SCHEMA, "meta", FLAG_SET))
    writer.add_document(documents.meta_document(projection.position(), SCHEMA_VERSION - 1))
    writer.commit()
    projection.close()
