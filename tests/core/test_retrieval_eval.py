"""Retrieval quality on a small real-looking corpus with the real embedding model.

Reports hit@1 and hit@3 for BM25 alone, vectors alone and hybrid (RRF); hybrid must be at
least as good as either alone. Run with -s to see the table; the README quotes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.core.documents.index import DocumentIndex, IndexLimits
from desktop.core.documents.retrieve import search
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.store.db import Database
from tests.doc_corpus import QUESTIONS, write_corpus


def evaluate(index: DocumentIndex, collection: int, client: EngineClient, model: str
             ) -> dict[str, dict[str, float]]:
    vectors = client.embed([q for q, _ in QUESTIONS])
    results: dict[str, dict[str, float]] = {}
    for mode in ("bm25", "vector", "hybrid"):
        hit1 = hit3 = 0
        for (question, answer), vector in zip(QUESTIONS, vectors, strict=True):
            hits = search(index.db, question, [collection], k=3, vector=vector, model=model,
                          mode=mode)
            found = [answer in " ".join(h.text.split()) for h in hits]
            hit1 += bool(found[:1] and found[0])
            hit3 += any(found)
        results[mode] = {"hit@1": hit1 / len(QUESTIONS), "hit@3": hit3 / len(QUESTIONS)}
    return results


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory, embed_model_path: Path):  # noqa: ANN201
    client = EngineClient(tmp_path_factory.mktemp("embed") / "embed.log")
    client.load(LoadOptions(str(embed_model_path), n_ctx=512, embedding=True))
    yield client
    client.shutdown()


def test_hybrid_is_at_least_as_good_as_either_alone(tmp_path: Path,
                                                    embedder: EngineClient) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    index = DocumentIndex(Database(tmp_path / "eval.sqlite3"))
    collection = index.create_collection("eval")
    state = index.add_paths(collection, [corpus["pdf"].parent], embedder=embedder.embed,
                            embed_model="minilm", limits=IndexLimits())
    assert not state.errors
    results = evaluate(index, collection, embedder, "minilm")
    print("\nretrieval eval (default chunking):", json.dumps(results))
    for metric in ("hit@1", "hit@3"):
        assert results["hybrid"][metric] >= max(results["bm25"][metric],
                                                results["vector"][metric])
    assert results["hybrid"]["hit@3"] >= 0.9


def test_chunk_size_choice(tmp_path: Path, embedder: EngineClient) -> None:
    """The default chunk size and overlap were chosen with this sweep (README, Documents)."""
    corpus = write_corpus(tmp_path / "corpus")
    scores = {}
    for size, overlap in ((100, 20), (200, 40), (400, 80)):
        index = DocumentIndex(Database(tmp_path / f"eval-{size}.sqlite3"))
        collection = index.create_collection("eval")
        index.add_paths(collection, [corpus["pdf"].parent], embedder=embedder.embed,
                        embed_model="minilm", limits=IndexLimits(chunk_size=size,
                                                                 chunk_overlap=overlap))
        result = evaluate(index, collection, embedder, "minilm")["hybrid"]
        scores[size] = result["hit@1"] + result["hit@3"]
    print("\nhybrid hit@1 + hit@3 by chunk size:", scores)
    assert scores[200] >= max(scores.values()) - 1e-9
