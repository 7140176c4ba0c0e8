"""The worker's embedder: passages packed into llama_decode batches sized for this machine.

llama-cpp-python's `Llama.embed` packs passages up to the context's one n_batch. For an encoder
(BERT: all-MiniLM, nomic-embed) every token of a batch is masked against every other, and on a
busy machine every decode waits at each of its ~200 thread barriers, so the best batch depends
on the machine and its load. Measured against llama.cpp's own `llama-embedding` on the index
bench's passages (bench --index --peer-embedding; passages/s at n_ubatch 256 (one passage a
decode), 512, 1024, 2048): 1 thread 12.9, 13.7, 12.6, 10.9; 2 threads, lightly loaded 7.2,
21.9, 22.8, 16.8; 2 threads, loaded 1.7, 2.8, 4.3, 4.7; 2 threads, quiet 22.8, 21.7, 20.4,
17.8. So the context holds up to PACKS[-1] tokens and each decode takes one of PACKS or holds
one passage: each is tried once, then the cheapest per token is used and the others are
re-measured now and then, spaced so that trying a worse one costs a few percent at most,
following the machine's load as it changes.

The vectors are llama.cpp's: pooled by the model's own pooling (llama_get_embeddings_seq) and
L2-normalized, as `Llama.embed(normalize=True)` gives them (tests/engine/test_embeddings.py).
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

import llama_cpp
import numpy as np

from desktop.core.errors import EngineError

PACKS = (512, 1024, 2048)  # most tokens per decode; 0 would mean one passage per decode
PACK_TOKENS = PACKS[-1]  # the context's n_ctx = n_batch = n_ubatch (an encoder needs ubatch >= batch)
DEFAULT_PACK = 1024  # until measured
EXPLORE_SPACING = 20.0  # a re-measuring decode waits 20x its own last duration since the last
MOVING = 0.3  # weight of a new measurement in a pack's seconds per token


class Embedder:
    def __init__(self, llm: llama_cpp.Llama, max_tokens: int) -> None:
        self.llm = llm
        self.ctx = llm.ctx
        self.max_tokens = max_tokens  # per passage: the context the caller asked for
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        model = llm.model
        out = getattr(llama_cpp, "llama_model_n_embd_out", llama_cpp.llama_model_n_embd)
        self.n_embd = int(out(model))
        # Per-token or reranking outputs are not one vector per passage: Llama.embed as before.
        self.pooled = llama_cpp.llama_pooling_type(self.ctx) not in (
            llama_cpp.LLAMA_POOLING_TYPE_NONE, llama_cpp.LLAMA_POOLING_TYPE_RANK)
        capacity = min(llama_cpp.llama_n_batch(self.ctx), llama_cpp.llama_n_ubatch(self.ctx))
        # One passage a decode is a candidate too: on one thread it measured 1-8% ahead of
        # 512 in three runs of four; with 2 threads it was 3x behind on a loaded machine and
        # the best of all on a quiet one (22.8 passages/s against 21.7 at 512 and 17.8 at
        # 2,048), so only measuring can tell.
        self.packs = tuple(p for p in (0, *PACKS) if p <= capacity) or (0,)
        self.capacity = capacity
        self.max_seqs = max(1, int(llm.context_params.n_seq_max))
        # The batch's arrays are numpy's, filled a passage at a time, never token by token.
        self._token = np.zeros(capacity, dtype=np.int32)
        self._pos = np.zeros(capacity, dtype=np.int32)
        self._n_seq_id = np.ones(capacity, dtype=np.int32)
        self._seq = np.zeros(capacity, dtype=np.int32)
        self._logits = np.ones(capacity, dtype=np.int8)  # pooling reads every token's output
        pointer = ctypes.POINTER(ctypes.c_int32)
        self._seq_ptrs = (pointer * capacity)(*(
            ctypes.cast(self._seq.ctypes.data + 4 * i, pointer) for i in range(capacity)))
        self._batch = llama_cpp.llama_batch(
            n_tokens=0,
            token=self._token.ctypes.data_as(pointer),
            embd=None,
            pos=self._pos.ctypes.data_as(pointer),
            n_seq_id=self._n_seq_id.ctypes.data_as(pointer),
            seq_id=self._seq_ptrs,
            logits=self._logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
        self.cost: dict[int, float] = {}  # seconds per token of each measured pack
        self._explored_at = 0.0  # when the last re-measuring decode ended
        self._explore_s = 0.0  # and how long it took
        self._turn = 0  # round robin over the packs to re-measure
        self._exploring = False
        # The first decode allocates and faults in what later ones reuse: not a measurement.
        self._decode([self.llm.tokenize(b"warm up")], np.zeros((1, self.n_embd)))

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if not self.pooled or self.capacity < 1:
            return list(self.llm.embed(texts, normalize=True, truncate=False))
        tokens = [self.llm.tokenize(text.encode("utf-8")) for text in texts]
        for passage in tokens:
            if len(passage) > min(self.max_tokens, self.capacity):
                raise EngineError(
                    f"A passage of {len(passage)} tokens is longer than the embedding model's "
                    f"{min(self.max_tokens, self.capacity)}-token context; split it smaller.")
        vectors = np.zeros((len(texts), self.n_embd), dtype=np.float64)
        remaining = sum(len(t) for t in tokens)
        start = 0
        while start < len(tokens):
            pack = self._choose(remaining, len(tokens) - start)
            end, used = start + 1, len(tokens[start])
            while (pack and end < len(tokens) and end - start < self.max_seqs
                   and used + len(tokens[end]) <= pack):
                used += len(tokens[end])
                end += 1
            started = time.perf_counter()
            self._decode(tokens[start:end], vectors[start:end])
            seconds = time.perf_counter() - started
            # Only a decode the pack limited says what the pack costs (not a request's tail).
            if end < len(tokens) and used:
                self._learn(pack, seconds / used)
            if self._exploring:
                self._explored_at, self._explore_s = time.perf_counter(), seconds
            remaining -= used
            start = end
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).tolist()

    def _choose(self, tokens: int, passages: int) -> int:
        # A pack is measured only where the passages left overflow it.
        fills = [p for p in self.packs if (passages > 1 if p == 0 else tokens > p)]
        untried = [p for p in fills if p not in self.cost]
        if untried:
            self._exploring = True
            return untried[0]
        self._exploring = False
        if not self.cost:
            return DEFAULT_PACK if DEFAULT_PACK in self.packs else self.packs[-1]
        best = min(self.cost, key=self.cost.__getitem__)
        others = [p for p in fills if p != best]
        due = time.perf_counter() - self._explored_at >= EXPLORE_SPACING * self._explore_s
        if others and due:
            self._turn += 1
            self._exploring = True
            return others[self._turn % len(others)]
        return best

    def _learn(self, pack: int, per_token: float) -> None:
        known = self.cost.get(pack)
        self.cost[pack] = per_token if known is None else known + MOVING * (per_token - known)

    def _decode(self, passages: list[list[int]], out: np.ndarray[Any, Any]) -> None:
        n = 0
        for seq, passage in enumerate(passages):
            k = len(passage)
            self._token[n:n + k] = passage
            self._pos[n:n + k] = np.arange(k, dtype=np.int32)
            self._seq[n:n + k] = seq
            n += k
        if n == 0:
            return  # only empty passages: their vectors stay zero
        self._batch.n_tokens = n
        llama_cpp.llama_memory_clear(self.memory, True)
        rc = llama_cpp.llama_decode(self.ctx, self._batch)
        if rc != 0:
            raise EngineError(f"llama.cpp could not embed the passages (llama_decode={rc}).")
        for seq, passage in enumerate(passages):
            if passage:
                pooled = llama_cpp.llama_get_embeddings_seq(self.ctx, seq)
                if not pooled:
                    raise EngineError("llama.cpp returned no embedding for a passage.")
                out[seq] = np.ctypeslib.as_array(
                    ctypes.cast(pooled, ctypes.POINTER(ctypes.c_float)), shape=(self.n_embd,))
