"""Sampling inside llama.cpp's compute graph ("backend sampling"), kept attached across replies.

Without it, every token costs a copy of the whole logits row out of the graph (262,144 floats
for Gemma 3: 1 MB) and a pass over it on the CPU to build the candidate array the sampler
chain works on. llama.cpp can instead run the chain's samplers as graph operations
(`llama_set_sampler`; greedy, top-k, top-p, min-p, temperature, penalties and dist all have
backend versions) and return only the chosen token: `llama_sampler_sample` then reads it back
(`llama_get_sampled_token_ith`) and skips the CPU chain. Measured on the test model, CPU, 1
thread: sampling a token went from ~0.95 ms of CPU to ~0.08 ms, with the same tokens, but the
graph's own sampling ops cost more than that on a CPU (offloadable()), so it is used where the
output layer runs on a GPU, where the logits copy is most of the per-token cost beyond the
decode itself (DESIGN section 4). llama-server has the same switch (`--backend-sampling`), off
by default.

Drafting (decode_loop.py) still works: a verify batch samples every drafted position in the
graph, and llama.cpp's dist sampler draws "transactionally" there (a draw counts only once its
token is accepted, in order), which is the acceptance rule _verify relies on.

Attaching a sampler makes llama.cpp re-plan its graph on the next decode, so the chain stays
attached while replies ask for the same sampling settings (it is reset per reply, which
re-seeds it exactly as a new chain would be) and is swapped only when they change.

Not offloaded: JSON-schema replies (llama.cpp's grammar sampler runs on the CPU only) and
vision models (image chunks are decoded through libmtmd, not tried with a graph sampler).
HEARTH_BACKEND_SAMPLING=off keeps every reply on the CPU chain, =on samples in the graph on a
CPU too (for comparisons).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import llama_cpp

SAMPLING_KEYS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed")


def offloadable(params: dict[str, Any], vision: bool, output_on_gpu: bool) -> bool:
    """Whether this reply samples in the graph: only where the model's output layer runs on a
    GPU. On the CPU the graph's own sampling ops (a padded copy of the logits row, argmax,
    one thread) cost more than the CPU chain they replace: measured here, 1 thread, Gemma 3
    270M, the decode grew by ~1.7 ms while sampling shrank by ~0.85 ms, same tokens.
    HEARTH_BACKEND_SAMPLING=on/off overrides (for comparisons)."""
    mode = os.environ.get("HEARTH_BACKEND_SAMPLING", "auto")
    if mode == "off" or params.get("json_schema") is not None or vision:
        return False
    return mode == "on" or output_on_gpu


class AttachedSampler:
    """The sampler chain attached to a context's sequence 0, if any."""

    def __init__(self) -> None:
        self.ctx: Any = None
        self.chain: Any = None
        self.key: tuple[Any, ...] | None = None

    def acquire(self, ctx: Any, params: dict[str, Any], build: Callable[[], Any],
                offload: bool) -> tuple[Any, bool]:
        """The chain for this reply and whether the caller owns (and must free) it."""
        if not offload:
            self.release()
            return build(), True
        key = tuple(params.get(k) for k in SAMPLING_KEYS)
        if self.chain is not None and self.ctx is ctx and self.key == key:
            # Penalties forget the last reply's tokens, a seeded dist starts again from its
            # seed (an unseeded one draws a new seed): the same as a new chain.
            llama_cpp.llama_sampler_reset(self.chain)
            return self.chain, False
        self.release()
        chain = build()
        if not llama_cpp.llama_set_sampler(ctx, 0, chain):
            return chain, True  # llama.cpp kept it on the CPU: an ordinary chain
        self.ctx, self.chain, self.key = ctx, chain, key
        return chain, False

    def release(self) -> None:
        """Detach and free the chain (before its context goes, and before a CPU-only reply)."""
        if self.chain is None:
            return
        llama_cpp.llama_set_sampler(self.ctx, 0, None)
        llama_cpp.llama_sampler_free(self.chain)
        self.ctx = self.chain = self.key = None
