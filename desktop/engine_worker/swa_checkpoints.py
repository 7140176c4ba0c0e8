"""Context checkpoints for sliding-window models, which keep llama.cpp's small SWA cache.

Models such as Gemma 3 and gpt-oss attend over a sliding window in most layers. llama.cpp keeps
those layers' KV in a second, small cache (about the window plus one batch) and reuses cells
that fell out of the window. The full-size alternative (`swa_full`) kept every cell, so any
prefix could be reused, but each of those layers then scanned the whole history: at 12,000
tokens Gemma 3 read a prompt 1.24-1.28x and generated 1.06-1.14x as fast with the small cache
(DESIGN 10; at 1,836 tokens the two were level).

With the small cache, the KV cache can be cut back (llama_memory_seq_rm) only as far as the
window still reaches: the first new token at position `t` attends positions t - n_swa + 1 .. t,
which must all still be in the cache. Going back further (regenerating a long reply, editing
the last message, a reasoning model's history without its thinking) needs the window's cells as
they were at that point: a checkpoint, the SWA cache alone saved with
`LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY` (the full-size layers still hold everything), as
llama-server does (tools/server/server-context.cpp). Without one the prompt is read again from
the start: slower, never wrong.

Checkpoints are taken where a next request is likely to branch: where a new prompt part starts
(the end of the previous reply, before the new message) and at the end of the prompt (before
the reply). A checkpoint at `n` (the cache held n tokens) serves a cut at n or n - 1: its cells
reach back to n - n_swa, which is what position n - 1 needs.

Rejected drafts (decode_loop.TokenStream._verify) need no checkpoint: llama.cpp reuses a cell
only once it is masked for the first position of the batch being written (llama-kv-cache.cpp,
find_slot), so every cell a later position can see survives a roll-back to inside that batch.

Not every model with a window gets checkpoints (`worth_checkpoints`): Llama 4's windows are
chunks (a cut must reach back to its chunk's start, which a checkpoint rarely holds), so it keeps
the full-size cache (`FULL_SIZE_ARCHITECTURES`); a hybrid or recurrent model (LFM2) cannot cut
its recurrent state back at all, and its pos_min is the recurrent state's, so it gets checkpoints
of that state instead (recurrent_checkpoints.py, a subclass of this one); and a model that reports a window with no
separate SWA cache (some EXAONE 4 sizes) would copy its whole cache per checkpoint, so `take`
stops when a partial state is as big as the whole one.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np
import psutil

MAX_CHECKPOINTS = 8  # llama-server's default (--ctx-checkpoints)
MIN_TOKENS = 32  # a shorter prefix is cheaper to read again
PARTIAL = llama_cpp.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
# Chunked windows (llama.cpp's LLAMA_SWA_TYPE_CHUNKED): loaded with the full-size cache.
FULL_SIZE_ARCHITECTURES = frozenset({"llama4"})


@dataclass
class Checkpoint:
    tokens: list[int]  # what the KV cache held: the checkpoint serves prompts starting so
    blob: np.ndarray  # the SWA cache's cells for sequence 0 (uint8)
    pos_min: int  # the oldest position it holds


def full_size_cache(architecture: str) -> bool:
    """Whether a model of `architecture` loads with the full-size SWA cache (swa_full)."""
    return architecture in FULL_SIZE_ARCHITECTURES


def worth_checkpoints(model: Any, architecture: str) -> int:
    """The model's sliding window in tokens where checkpoints serve it, else 0."""
    if full_size_cache(architecture) or llama_cpp.llama_model_is_recurrent(model) \
            or llama_cpp.llama_model_is_hybrid(model):
        return 0
    return max(0, int(llama_cpp.llama_model_n_swa(model)))


class SwaCheckpoints:
    """The checkpoints of one context (sequence 0) of a sliding-window model."""

    before_last = False  # a checkpoint at the end of the prompt serves a regeneration too
    min_tokens = MIN_TOKENS

    def __init__(self, ctx: Any, n_swa: int) -> None:
        self.ctx = ctx
        self.n_swa = n_swa
        self.saved: list[Checkpoint] = []  # oldest first
        self.restored = 0  # how many cuts a checkpoint served (stats, tests)
        self.off: bool | None = None  # no separate SWA cache after all: known at the first take

    def needs(self, cut: int) -> int:
        """The oldest position the token at `cut` attends to (positions are token indices:
        no multi-axis positions here)."""
        return max(0, cut - self.n_swa + 1)

    def reaches(self, cut: int) -> bool:
        """Whether the cache, cut back to its first `cut` tokens, still holds every position the
        token at `cut` attends to."""
        mem = llama_cpp.llama_get_memory(self.ctx)
        pos_min = llama_cpp.llama_memory_seq_pos_min(mem, 0)
        return 0 <= pos_min <= self.needs(cut) \
            and llama_cpp.llama_memory_seq_pos_max(mem, 0) >= cut - 1

    def cut(self, prompt: list[int], common: int) -> int:
        """How many of `prompt`'s first tokens the cache can keep, given that `common` of them
        match it: `common` where the window still reaches, else what a checkpoint restores (the
        cache then holds that prefix and no more), else 0 (the caller clears the cache)."""
        if common <= 0 or self.reaches(common):
            return common
        for checkpoint in reversed(self.saved):
            n = len(checkpoint.tokens)
            keep = min(common, n)
            if n > common + 1 or n > len(prompt) or checkpoint.pos_min > self.needs(keep) \
                    or prompt[:n] != checkpoint.tokens:
                continue
            mem = llama_cpp.llama_get_memory(self.ctx)
            llama_cpp.llama_memory_seq_rm(mem, 0, keep, -1)
            if restore_partial(self.ctx, checkpoint.blob) \
                    and llama_cpp.llama_memory_seq_rm(mem, 0, keep, -1) and self.reaches(keep):
                self.restored += 1
                return keep
            self.saved.remove(checkpoint)  # never try it again
            break  # refused, or not what it should be: read from the start
        return 0

    def prune(self, tokens: list[int]) -> None:
        """Drop checkpoints that are not a prefix of what the cache holds now (`tokens`)."""
        self.saved = [c for c in self.saved
                      if len(c.tokens) <= len(tokens) and tokens[:len(c.tokens)] == c.tokens]

    def take(self, tokens: list[int]) -> None:
        """Save the SWA cache now that the KV cache holds exactly `tokens`."""
        n = len(tokens)
        if self.off or n < self.min_tokens or any(len(c.tokens) == n for c in self.saved):
            return
        size = llama_cpp.llama_state_seq_get_size_ext(self.ctx, 0, PARTIAL)
        if self.off is None:  # one cache: a "checkpoint" would be all of it
            self.off = size >= llama_cpp.llama_state_seq_get_size_ext(self.ctx, 0, 0)
            if self.off:
                return
        if not size or not self._room_for(size):
            return
        blob = save_partial(self.ctx)
        if blob is None:
            return
        pos_min = llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(self.ctx), 0)
        self._keep(Checkpoint(list(tokens), blob, pos_min))

    def _keep(self, checkpoint: Checkpoint) -> None:
        self.saved.append(checkpoint)
        self.saved.sort(key=lambda c: len(c.tokens))
        while len(self.saved) > MAX_CHECKPOINTS:
            self.saved.pop(0)  # the oldest point of the chat is the least likely branch

    def _room_for(self, size: int) -> bool:
        """At most a tenth of the memory free now for all checkpoints together (a big model's
        window is hundreds of MB): evict the oldest to make room, or skip this one."""
        budget = psutil.virtual_memory().available // 10
        if size > budget:
            return False
        while self.saved and sum(len(c.blob) for c in self.saved) + size > budget:
            self.saved.pop(0)
        return True

    def clear(self) -> None:
        self.saved.clear()


def save_partial(ctx: Any, reuse: np.ndarray | None = None) -> np.ndarray | None:
    """Sequence 0's partial state (PARTIAL_ONLY: a SWA cache, a recurrent state) in a new
    uint8 buffer, or in `reuse` where that has the size; None where llama.cpp wrote less."""
    size = llama_cpp.llama_state_seq_get_size_ext(ctx, 0, PARTIAL)
    blob = reuse if reuse is not None and reuse.size == size else np.empty(size, np.uint8)
    written = llama_cpp.llama_state_seq_get_data_ext(ctx, pointer(blob), size, 0, PARTIAL)
    return blob if size and written == size else None  # np.empty: llama.cpp writes all of it


def restore_partial(ctx: Any, blob: np.ndarray) -> bool:
    """Put a save_partial state back into sequence 0; False where llama.cpp refused it."""
    return bool(llama_cpp.llama_state_seq_set_data_ext(ctx, pointer(blob), blob.size, 0,
                                                        PARTIAL))


def pointer(blob: np.ndarray) -> Any:
    """A uint8 numpy buffer as the pointer llama.cpp's state functions take."""
    return blob.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
