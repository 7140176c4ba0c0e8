"""`bench --index`: document indexing speed and retrieval latency at 100,000 passages."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WORDS = ("river mill bridge ledger invoice keeper harbour lantern engine protocol budget "
         "meeting policy vacation warranty battery recipe oven dough focaccia migration "
         "rollback server request minute backup archive summary report chapter figure").split()


def _synthetic_corpus(folder: Path, files: int, rng: random.Random) -> list[Path]:
    paths = []
    for i in range(files):
        sections = []
        for s in range(6):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(14)).capitalize() + "."
                         for _ in range(8)]
            sections.append(f"## Section {s}\n\n" + " ".join(sentences))
        path = folder / f"doc-{i:04}.md"
        path.write_text(f"# Document {i}\n\n" + "\n\n".join(sections), encoding="utf-8")
        paths.append(path)
    return paths


def bench_index(embed_model: str | None, repeats: int, log_dir: Path) -> dict[str, Any]:
    from desktop.core.documents.chunk import chunk_sections
    from desktop.core.documents.extract import extract

    rng = random.Random(7)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hearth-bench-docs-") as tmp:
        folder = Path(tmp)
        files = _synthetic_corpus(folder, 100, rng)
        started = time.perf_counter()
        extracted = [extract(p, 10**9) for p in files]
        extract_s = time.perf_counter() - started
        sections = sum(len(e) for e in extracted)
        started = time.perf_counter()
        chunks = [c for e in extracted for c in chunk_sections(e)]
        chunk_s = time.perf_counter() - started
        out.update(files=len(files), sections=sections, chunks=len(chunks),
                   extract_files_per_s=len(files) / extract_s,
                   chunk_chunks_per_s=len(chunks) / chunk_s)
        if embed_model:
            from desktop.core.engine.client import EngineClient, LoadOptions

            texts = [c.text for c in chunks[:256]]
            client = EngineClient(log_dir / "bench-embed.log")
            try:
                client.load(LoadOptions(embed_model, n_ctx=512, embedding=True))
                client.embed(texts[:4])
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    for start in range(0, len(texts), 32):
                        client.embed(texts[start:start + 32])
                    times.append(time.perf_counter() - started)
            finally:
                client.shutdown()
            from desktop.engine_worker.reference import embed_reference

            ours = len(texts) / statistics.median(times)
            ref = len(texts) / embed_reference(embed_model, texts, 32, repeats)
            out.update(embed_chunks_per_s=ours, embed_reference_chunks_per_s=ref)
        out.update(_retrieval_latency(Path(tmp) / "big.sqlite3", rng))
    return out


def _retrieval_latency(db_path: Path, rng: random.Random, n: int = 100_000,
                       dim: int = 384) -> dict[str, Any]:
    """100,000 synthetic passages with random normalized vectors in the real schema."""
    from desktop.core.documents.index import DocumentIndex
    from desktop.core.documents.retrieve import VECTORS, search
    from desktop.core.store.db import Database

    db = Database(db_path)
    index = DocumentIndex(db)
    collection = index.create_collection("big")
    generator = np.random.default_rng(7)
    vectors = generator.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    blobs = vectors.astype(np.float16)
    with db.lock:
        conn = db.conn
        conn.execute("BEGIN")
        cur = conn.execute("INSERT INTO documents(collection_id, path, status, chunk_count, "
                           "indexed_at) VALUES (?, 'synthetic', 'indexed', ?, 0)",
                           (collection, n))
        document = cur.lastrowid
        conn.executemany(
            "INSERT INTO chunks(id, document_id, ord, text) VALUES (?, ?, ?, ?)",
            ((i + 1, document, i, " ".join(rng.choice(WORDS) for _ in range(40)))
             for i in range(n)))
        conn.executemany("INSERT INTO embeddings VALUES (?, 'synthetic', ?)",
                         ((i + 1, blobs[i].tobytes()) for i in range(n)))
        conn.execute("COMMIT")
    query = vectors[123] + 0.01
    started = time.perf_counter()
    search(db, "ledger invoice", [collection], k=5, vector=query, model="synthetic")
    first = time.perf_counter() - started  # includes loading the matrix from SQLite
    vector_times, hybrid_times = [], []
    for i in range(10):
        started = time.perf_counter()
        search(db, "", [collection], k=5, vector=vectors[i], model="synthetic", mode="vector")
        vector_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        search(db, f"{WORDS[i]} {WORDS[i + 3]}", [collection], k=5, vector=vectors[i],
               model="synthetic")
        hybrid_times.append(time.perf_counter() - started)
    db.close()
    VECTORS._cache.clear()
    return {"retrieval_chunks": n, "retrieval_first_query_s": first,
            "retrieval_vector_ms": statistics.median(vector_times) * 1e3,
            "retrieval_hybrid_ms": statistics.median(hybrid_times) * 1e3}
