"""What a clicked citation shows: the cited passage among its neighbours in the document."""

from __future__ import annotations

from dataclasses import dataclass

from desktop.core.documents.index import DocumentIndex


@dataclass
class Passage:
    id: int
    text: str
    cited: bool  # the passage the answer cited; the others are its neighbours


def passage_with_neighbours(index: DocumentIndex, chunk_id: int, around: int = 1
                            ) -> list[Passage]:
    """The cited passage with `around` passages before and after it, in document order.
    Raises NotFound when the passage is gone (the document was re-indexed or removed)."""
    chunk = index.chunk(chunk_id)
    rows = index.db.query(
        "SELECT id, text FROM chunks WHERE document_id = ? AND ord BETWEEN ? AND ? ORDER BY ord",
        (chunk["document_id"], chunk["ord"] - around, chunk["ord"] + around))
    return [Passage(int(r["id"]), r["text"], int(r["id"]) == int(chunk["id"])) for r in rows]
