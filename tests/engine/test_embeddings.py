"""The worker's embeddings are raw llama.cpp's: the same vectors as one passage decoded alone
through the low-level API (written here apart from the worker's code), for passages the
worker packs several to a batch, as the indexer sends them."""

from __future__ import annotations

import ctypes
import random
from pathlib import Path

import numpy as np
import pytest

from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import EngineError

WORDS = "river mill bridge ledger invoice keeper harbour lantern engine protocol budget".split()


def _passages() -> list[str]:
    rng = random.Random(3)
    texts = [" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."
             for n in (120, 40, 90, 7, 150, 60, 110)]
    return [*texts, "How do plants get energy from sunlight?", "Ünïcödé, emoji 🌿 and tabs\t."]


def _raw_vectors(model_path: Path, texts: list[str]) -> np.ndarray:
    """Each text alone in its own llama_decode, its pooled vector read with
    llama_get_embeddings_seq and L2-normalized: llama.cpp's embedding example, in Python."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(),
                                                 llama_cpp.llama_model_default_params())
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = params.n_batch = params.n_ubatch = 512
    params.n_threads = params.n_threads_batch = 1
    params.embeddings = True
    ctx = llama_cpp.llama_init_from_model(model, params)
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_embd = llama_cpp.llama_model_n_embd(model)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    vectors = []
    try:
        for text in texts:
            raw = text.encode()
            tokens = (llama_cpp.llama_token * 512)()
            n = llama_cpp.llama_tokenize(vocab, raw, len(raw), tokens, 512, True, False)
            assert 0 < n <= 512
            for i in range(n):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tokens[i], i, 1
                batch.seq_id[i][0], batch.logits[i] = 0, True
            batch.n_tokens = n
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            assert llama_cpp.llama_decode(ctx, batch) == 0
            pooled = llama_cpp.llama_get_embeddings_seq(ctx, 0)
            vector = np.ctypeslib.as_array(ctypes.cast(pooled, ctypes.POINTER(ctypes.c_float)),
                                           shape=(n_embd,)).copy()
            vectors.append(vector / np.linalg.norm(vector))
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
    return np.array(vectors)


def test_worker_vectors_are_raw_llama_cpp_vectors(tmp_path: Path, embed_model_path: Path) -> None:
    texts = _passages()
    client = EngineClient(tmp_path / "embed.log")
    try:
        client.load(LoadOptions(str(embed_model_path), n_ctx=512, n_batch=512, embedding=True,
                                n_threads=1, n_threads_batch=1))
        ours = np.array(client.embed(texts), dtype=np.float32)
        alone = np.array(client.embed(texts[:1]), dtype=np.float32)  # a batch of one
        assert client.embed([]) == []
        # Longer than the model's 512 tokens: one clear sentence, never a silently cut vector,
        # and the worker keeps serving.
        with pytest.raises(EngineError, match="longer than the embedding model's 512-token"):
            client.embed(["word " * 700])
        assert len(client.embed(["still serving"])) == 1
    finally:
        client.shutdown()
    raw = _raw_vectors(embed_model_path, texts)
    assert ours.shape == raw.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosine = np.sum(ours * raw, axis=1) / np.linalg.norm(ours, axis=1)
    assert cosine.min() > 1 - 1e-4, cosine
    assert float(alone[0] @ raw[0]) > 1 - 1e-4


def test_every_pack_gives_the_same_vectors(embed_model_path: Path) -> None:
    """Whichever batch size the embedder settles on, each passage's vector is the same."""
    from desktop.engine_worker.embedder import PACK_TOKENS, Embedder
    from desktop.engine_worker.runner import open_model

    texts = _passages() * 3  # ~2,000 tokens: several passages in each decode of every pack
    llm = open_model(str(embed_model_path), embedding=True, n_ctx=PACK_TOKENS,
                     n_batch=PACK_TOKENS, n_ubatch=PACK_TOKENS, n_threads=2, n_threads_batch=2,
                     verbose=False)
    embedder = Embedder(llm, 512)
    raw = _raw_vectors(embed_model_path, texts[:len(_passages())])
    raw = np.concatenate([raw] * 3)
    decodes: list[int] = []  # passages in each decode
    decode = embedder._decode

    def counted(passages: list[list[int]], out: np.ndarray) -> None:
        decodes.append(len(passages))
        decode(passages, out)

    embedder._decode = counted  # type: ignore[method-assign]
    assert embedder.packs == (0, 512, 1024, 2048)  # one passage a decode, or packed
    for pack in embedder.packs:
        # All measured, this one the cheapest, none re-measured: every decode takes this pack.
        embedder.cost = {p: 0.0 if p == pack else 1.0 for p in embedder.packs}
        embedder._explore_s = float("inf")
        decodes.clear()
        ours = np.array(embedder.embed(texts), dtype=np.float32)
        assert np.sum(ours * raw, axis=1).min() > 1 - 1e-4, pack
        assert sum(decodes) == len(texts)
        assert max(decodes) == 1 if pack == 0 else max(decodes) > 1  # several to a decode
