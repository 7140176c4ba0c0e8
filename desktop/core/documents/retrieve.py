"""Hybrid retrieval: BM25 over the FTS5 index, cosine over embeddings, fused by reciprocal rank.

Vectors are normalized float16 rows in SQLite, loaded once per collection set into a numpy
matrix (100,000 x 384 is 77 MB and one matrix-vector product: a few milliseconds) and reloaded
only when the set's chunks change.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from desktop.core.documents.paths import shown
from desktop.core.store.db import Database

RRF_K = 60
# Dense retrieval understands paraphrases that keywords miss, so it counts a little more when
# both rankings are present; chosen with the retrieval evaluation in tests (README: Documents).
WEIGHTS = {"vector": 1.0, "bm25": 0.7}
MIN_COSINE = 0.25
CANDIDATES = 50
_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be by can could did do does for from had has have how i if in into is "
    "it its me my of on or our should so that the their them then there these they this to "
    "was we were what when where which who why will with would you your about any tell".split())


@dataclass
class Hit:
    chunk_id: int
    path: str
    page: int | None
    page_end: int | None
    line_start: int | None
    line_end: int | None
    heading: str | None
    text: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def lines(self) -> list[int] | None:
        if self.line_start is None:
            return None
        return [self.line_start, self.line_end if self.line_end is not None else self.line_start]

    def location(self) -> str:
        # The stored path may carry a non-UTF-8 name in its database form: show \xNN instead.
        name = shown(self.path.replace("\\", "/").rsplit("/", 1)[-1])
        if self.page is not None:
            pages = (f"pages {self.page}-{self.page_end}" if self.page_end not in (None, self.page)
                     else f"page {self.page}")
            return f"{name}, {pages}"
        if self.line_start is not None:
            return f"{name}, lines {self.line_start}-{self.line_end}"
        return f"{name}" + (f", {self.heading}" if self.heading else "")

    def as_dict(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "path": self.path, "page": self.page,
                "lines": self.lines, "heading": self.heading, "score": self.score,
                "text": self.text, "location": self.location()}


def fts_query(text: str) -> str | None:
    """User text as an FTS5 query: every meaningful word, quoted, OR-ed (BM25 ranks them)."""
    words = [w.lower() for w in _WORD.findall(text)]
    keep = [w for w in words if w not in STOPWORDS and len(w) > 1] or words
    if not keep:
        return None
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(keep))


class VectorCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}

    def matrix(self, db: Database, collections: tuple[int, ...], model: str
               ) -> tuple[np.ndarray, np.ndarray]:
        marks = ",".join("?" * len(collections))
        # Any indexing or deletion changes the table's row count or its newest id: a cheap
        # check (no joins) that decides whether the cached matrix is still right.
        stamp = db.query("SELECT COUNT(*) AS n, MAX(chunk_id) AS m FROM embeddings")[0]
        key = (collections, model, stamp["n"], stamp["m"])
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        rows = db.query(
            f"SELECT e.chunk_id, e.vector FROM embeddings e JOIN chunks c ON c.id = e.chunk_id "
            f"JOIN documents d ON d.id = c.document_id WHERE e.model = ? "
            f"AND d.collection_id IN ({marks})", (model, *collections))
        ids = np.fromiter((r["chunk_id"] for r in rows), dtype=np.int64, count=len(rows))
        # Stored as float16 (half the disk); searched as float32, which BLAS multiplies fast.
        matrix = (np.frombuffer(b"".join(r["vector"] for r in rows), dtype=np.float16)
                  .reshape(len(rows), -1).astype(np.float32) if rows
                  else np.zeros((0, 0), np.float32))
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k[:2] != key[:2]}
            self._cache[key] = (ids, matrix)
        return ids, matrix


VECTORS = VectorCache()


def bm25_ranking(db: Database, query: str, collections: tuple[int, ...],
                 limit: int = CANDIDATES) -> list[int]:
    match = fts_query(query)
    if match is None or not collections:
        return []
    marks = ",".join("?" * len(collections))
    rows = db.query(
        f"SELECT f.rowid AS id FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "
        f"JOIN documents d ON d.id = c.document_id WHERE chunks_fts MATCH ? "
        f"AND d.collection_id IN ({marks}) ORDER BY bm25(chunks_fts) LIMIT ?",
        (match, *collections, limit))
    return [int(r["id"]) for r in rows]


def vector_ranking(db: Database, vector: list[float] | np.ndarray | None,
                   collections: tuple[int, ...], model: str | None,
                   limit: int = CANDIDATES) -> list[int]:
    if vector is None or model is None or not collections:
        return []
    ids, matrix = VECTORS.matrix(db, collections, model)
    if not len(ids):
        return []
    query = np.asarray(vector, dtype=np.float32)
    query /= max(float(np.linalg.norm(query)), 1e-12)
    scores = matrix @ query
    limit = min(limit, len(scores))
    top = np.argpartition(-scores, limit - 1)[:limit]
    top = top[np.argsort(-scores[top])]
    # Nearest is not the same as relevant: below this similarity a passage is noise, and the
    # user is better told that nothing matched.
    return [int(ids[i]) for i in top if scores[i] >= MIN_COSINE]


def fuse(rankings: dict[str, list[int]], k: int = RRF_K,
         weights: dict[str, float] | None = None) -> list[tuple[int, float, dict[str, int]]]:
    """Reciprocal-rank fusion: each ranking adds weight / (k + rank) to a passage's score."""
    weights = weights or WEIGHTS
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, ranking in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
            ranks.setdefault(chunk_id, {})[name] = rank
    ordered = sorted(scores.items(), key=lambda item: -item[1])
    return [(chunk_id, score, ranks[chunk_id]) for chunk_id, score in ordered]


def search(db: Database, query: str, collections: list[int], *, k: int = 5,
           vector: list[float] | np.ndarray | None = None, model: str | None = None,
           mode: str = "hybrid") -> list[Hit]:
    """Top-k passages. mode: "hybrid" (RRF of both), "bm25" or "vector"."""
    key = tuple(sorted(set(collections)))
    rankings: dict[str, list[int]] = {}
    if mode in ("hybrid", "bm25"):
        rankings["bm25"] = bm25_ranking(db, query, key)
    if mode in ("hybrid", "vector"):
        rankings["vector"] = vector_ranking(db, vector, key, model)
    fused = fuse(rankings)[:k]
    if not fused:
        return []
    marks = ",".join("?" * len(fused))
    rows = {r["id"]: r for r in db.query(
        f"SELECT c.*, d.path FROM chunks c JOIN documents d ON d.id = c.document_id "
        f"WHERE c.id IN ({marks})", tuple(chunk_id for chunk_id, _, _ in fused))}
    return [Hit(chunk_id, rows[chunk_id]["path"], rows[chunk_id]["page"],
                rows[chunk_id]["page_end"], rows[chunk_id]["line_start"],
                rows[chunk_id]["line_end"], rows[chunk_id]["heading"], rows[chunk_id]["text"],
                score, ranks)
            for chunk_id, score, ranks in fused if chunk_id in rows]
