"""`bench --index`: document indexing speed and retrieval latency at 100,000 passages.

Embedding is measured as the app indexes: the bench's passages go through the worker 32 at a
time (the indexer's EMBED_BATCH), with the shape the app loads the embedding model with. Two
references:

- in process, llama-cpp-python's own `Llama.embed` over the same passages (what the worker
  used before it had its own batching, engine_worker/embedder.py);
- with `--peer-embedding PATH`, llama.cpp's own `llama-embedding`, built from the source
  llama-cpp-python vendors, run at each `n_ctx = n_batch = n_ubatch` shape of PEER_BATCHES
  with the same threads; the best shape is the raw ceiling, and the row
  `embed passages/s vs raw ceiling` is Hearth against it (issue 14's target: >= 0.9). Both
  get the passages 32 at a time, taking turns slice by slice (_embed). The peer's time runs
  from its first decode to its exit (model load and tokenizing excluded), so the ceiling is,
  if anything, generous. Its vectors are compared with Hearth's too.

    python main.py bench --index --embed-model all-MiniLM-L6-v2-f16.gguf \
        --peer-embedding /tmp/llama-peer/bin/llama-embedding [--threads 1]

The peer binary: configure llama.cpp as for --peer-server (README, Performance) and
`-DLLAMA_BUILD_EXAMPLES=ON` (llama-embedding is one of llama.cpp's examples), then
`cmake --build /tmp/llama-peer --config Release -j 2 --target llama-embedding`.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# n_ctx = n_batch = n_ubatch for the peer: llama-embedding raises n_batch to n_ctx and sets
# n_ubatch = n_batch for encoders (BERT attends across the whole ubatch, so that one batch must
# hold whole passages); the bench's ~150-token passages put 1, 3, 6 and 13 in a batch of these.
PEER_BATCHES = (256, 512, 1024, 2048)
PEER_SEPARATOR = "<#hearth-passage#>"
EMBED_BATCH = 32  # passages per request, as desktop/core/documents/index.py sends them

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


def bench_index(embed_model: str | None, repeats: int, log_dir: Path,
                peer_embedding: str | None = None, threads: int | None = None) -> dict[str, Any]:
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
            out.update(_embed(embed_model, [c.text for c in chunks[:256]], repeats, log_dir,
                              peer_embedding, threads))
        out.update(_retrieval_latency(Path(tmp) / "big.sqlite3", rng))
    return out


def _embed(model: str, texts: list[str], repeats: int, log_dir: Path,
           peer: str | None, threads: int | None) -> dict[str, Any]:
    """Passages/s through the worker and, with `peer`, through llama-embedding at each shape.

    On a shared machine the load changes within a minute, so the sides take turns request by
    request: each EMBED_BATCH slice goes to the worker and to each peer shape (a run of
    llama-embedding on that slice) before the next slice, the order alternating."""
    from desktop.core.engine.client import EngineClient, LoadOptions
    from desktop.engine_worker.reference import embed_reference

    threads = threads or os.cpu_count() or 1  # the worker embeds with n_threads_batch
    client = EngineClient(log_dir / "bench-embed.log")
    sides: list[int | None] = [None, *(PEER_BATCHES if peer else ())]  # None: Hearth
    rates: dict[int | None, list[float]] = {side: [] for side in sides}
    per_batch: dict[int, int] = {}
    vectors: dict[int | None, list[np.ndarray]] = {}
    slices = [texts[i:i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH)]
    with tempfile.TemporaryDirectory(prefix="hearth-bench-embed-") as tmp:
        corpora = []
        for i, chunk in enumerate(slices):
            corpora.append(Path(tmp) / f"passages-{i}.txt")
            corpora[-1].write_text(PEER_SEPARATOR.join(chunk), encoding="utf-8")
        try:
            # The shape the app loads it with (core/context.py), threads as the peer's.
            client.load(LoadOptions(model, n_ctx=512, n_batch=512, embedding=True,
                                    n_threads=threads, n_threads_batch=threads))
            client.embed(texts[:4])  # warm-up
            turn = 0
            for _ in range(repeats):
                seconds = dict.fromkeys(sides, 0.0)
                vectors = {side: [] for side in sides}
                for chunk, corpus in zip(slices, corpora, strict=True):
                    turn += 1
                    for side in sides if turn % 2 else sides[::-1]:
                        if side is None:
                            started = time.perf_counter()
                            got = np.asarray(client.embed(chunk), dtype=np.float32)
                            seconds[side] += time.perf_counter() - started
                        else:
                            took, most, got = _peer_embed(peer or "", model, corpus, len(chunk),
                                                          side, threads)
                            seconds[side] += took
                            per_batch[side] = max(per_batch.get(side, 0), most)
                        vectors[side].append(got)
                for side in sides:
                    rates[side].append(len(texts) / seconds[side])
        finally:
            client.shutdown()
    out: dict[str, Any] = {"embed_chunks_per_s": statistics.median(rates[None]),
                           "embed_threads": threads}
    out["embed_reference_chunks_per_s"] = len(texts) / embed_reference(
        model, texts, EMBED_BATCH, repeats, n_threads=threads)
    if peer:
        peers = {side: statistics.median(rates[side]) for side in PEER_BATCHES}
        best = max(peers, key=lambda b: peers[b])
        mine = np.concatenate([ours[:len(theirs)] for ours, theirs
                               in zip(vectors[None], vectors[best], strict=True)])
        theirs = np.concatenate([v for v in vectors[best] if len(v)])
        cosine = np.sum(mine * theirs, axis=1) / (
            np.linalg.norm(mine, axis=1) * np.linalg.norm(theirs, axis=1))
        out.update(embed_peer_chunks_per_s=peers, embed_peer_passages_per_batch=per_batch,
                   embed_ceiling_chunks_per_s=peers[best], embed_ceiling_batch=best,
                   embed_peer_min_cosine=float(cosine.min()))
    return out


def _peer_embed(binary: str, model: str, corpus: Path, n: int, batch: int, threads: int
                ) -> tuple[float, int, np.ndarray]:
    """llama-embedding over the passages at one shape: seconds from its first decode to its
    exit, the most passages one decode held, and its (normalized) vectors."""
    started = time.perf_counter()
    proc = subprocess.run(
        [binary, "-m", model, "-f", str(corpus), "--embd-separator", PEER_SEPARATOR,
         "-c", str(batch), "-b", str(batch), "-ub", str(batch), "-t", str(threads),
         "-tb", str(threads), "--embd-output-format", "raw", "--log-timestamps"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800, check=True)
    total = time.perf_counter() - started
    decodes = [line for line in proc.stderr.splitlines() if "batch_decode: n_tokens" in line]
    # The log's clock starts as the process does (M.SS.mmm.uuu); up to the first decode it
    # loaded the model and tokenized the passages.
    minutes, seconds, ms, us = (int(x) for x in decodes[0].split()[0].split("."))
    first_decode = minutes * 60 + seconds + ms / 1e3 + us / 1e6
    most = max(int(line.rsplit("n_seq = ", 1)[1]) for line in decodes)
    # One vector a line; under load its log thread can lose the tail of the output at exit,
    # so only the complete leading lines are kept (for the vector comparison, not the time).
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()][:n]
    width = len(rows[0]) if rows else 0
    complete = next((i for i, row in enumerate(rows) if len(row) != width), len(rows))
    vectors = np.array([[float(x) for x in row] for row in rows[:complete]], dtype=np.float32)
    return total - first_decode, most, vectors


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
