"""Context checkpoints for recurrent and hybrid models (Mamba, RWKV; LFM2, Granite 4 H).

Such a model's recurrent state summarises every token read so far and holds no earlier
position, so llama.cpp can cut its cache back only to nothing (llama_memory_seq_rm refuses a
partial cut). A follow-up that only appends keeps the cache; anything that branches earlier
(regenerating a reply, editing the last message, a reasoning model's history without its
thinking) would read the whole prompt again. So, as llama-server keeps context checkpoints
for these models (at other points: a few tokens before a prompt's end and where user messages
start), the worker saves the recurrent state at the points a next request is likely to branch
from, and a cut restores the latest one at or before it: the state with
LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY (a hybrid's full-attention layers are left out: their KV
cache can be cut like any other; a sliding-window cache beside them is saved too), then the
attention cache cut back to the same point.

A checkpoint taken after n tokens serves a cut at exactly n, not n - 1 as a sliding window's
does (swa_checkpoints.py): the state after n tokens cannot give up its last one. Regenerating
cuts at the prompt's last token (its logits must be computed again), so the prompt's last token
is decoded apart and a checkpoint taken before it (`before_last`; not where the new part holds
an image, which multimodal.py decodes whole, nor below MIN_TOKENS); another is taken after it
(where a reply starts: the next turn of a reasoning model, whose history drops the thinking,
branches there) and where a new prompt part starts (editing the last message). Without a
usable checkpoint the prompt is read from the start: slower, never wrong. Checkpoints share
a tenth of free memory, shortest dropped first: a big Mamba-2 hybrid's state (~150 MB for
Granite 4 H Small) may leave room for only the latest one or two.
"""

from __future__ import annotations

from typing import Any

import llama_cpp

from desktop.engine_worker.swa_checkpoints import SwaCheckpoints, restore_partial


def has_recurrent_state(model: Any) -> bool:
    return bool(llama_cpp.llama_model_is_recurrent(model)
                or llama_cpp.llama_model_is_hybrid(model))


class RecurrentCheckpoints(SwaCheckpoints):
    """The checkpoints of one context (sequence 0) of a recurrent or hybrid model."""

    before_last = True  # decode a prompt's last token apart, with a checkpoint before it

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, 0)
        # A pure recurrent model's partial state is all of it, which is what a checkpoint must
        # hold: `take` saves it (within its share of free memory).
        self.off = False

    def cut(self, prompt: list[int], common: int) -> int:
        """How many of `prompt`'s first tokens the cache can keep, `common` of them matching
        it: all of them where nothing is cut (the cache holds no more than `common`), else the
        longest checkpoint's (the cache then holds exactly that prefix), else `common` (the
        caller's cut then fails and it reads from the start)."""
        mem = llama_cpp.llama_get_memory(self.ctx)
        if common <= 0 or llama_cpp.llama_memory_seq_pos_max(mem, 0) < common:
            return common
        for checkpoint in reversed(self.saved):
            n = len(checkpoint.tokens)
            if n > common or prompt[:n] != checkpoint.tokens:
                continue
            if restore_partial(self.ctx, checkpoint.blob) \
                    and llama_cpp.llama_memory_seq_rm(mem, 0, n, -1) \
                    and llama_cpp.llama_memory_seq_pos_max(mem, 0) == n - 1:
                self.restored += 1
                return n
            self.saved.remove(checkpoint)  # never try it again
            llama_cpp.llama_memory_clear(mem, True)  # half restored: start clean
            return 0
        return common
