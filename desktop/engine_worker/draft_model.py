"""A small model that drafts tokens for the big one (speculative decoding, issue 14).

The draft model has its own llama.cpp context and KV cache, kept in step with the target's
lazily: only when a draft is wanted does it compare the tokens it holds with the target's
(the runner's cache_tokens), drop what differs (llama_memory_seq_rm) and read what is
missing in n_batch slices. Then it proposes up to k tokens greedily, one llama_decode each,
and stops as soon as it is unsure (its top token's probability below P_MIN, as llama.cpp's
speculative example does with p_min): a guess it does not believe costs the target a wider
batch for nothing. TokenStream._verify checks the draft in one batched decode of the target,
so the reply stays exactly the target's whatever the draft says.

The vocabularies must be the same (core/models/draft_pairing.py compares them), since the
draft's token ids go straight into the target's batch.

A recurrent or hybrid draft model (LFM2-350M for a larger LFM2) cannot cut its cache back past
its rejected drafts (llama_memory_seq_rm refuses: decode_loop.py), so its state is saved
before each draft (PARTIAL_ONLY) and restored at the next sync instead of reading its window
again from nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from desktop.core.errors import HearthError
from desktop.core.models.draft_pairing import incompatibility
from desktop.core.models.gguf import GGUFInfo, read_gguf
from desktop.engine_worker.decode_loop import warm_up
from desktop.engine_worker.recurrent_checkpoints import has_recurrent_state
from desktop.engine_worker.swa_checkpoints import restore_partial, save_partial

P_MIN = 0.5  # stop drafting when the draft model's top token is less likely than this
# The most tokens it reads to catch up. Beyond that it reads only the newest WINDOW tokens
# of the history (as if the chat began there): drafting needs the recent context most, and
# reading a whole restored 8k-token chat would delay the reply by seconds.
WINDOW = 1024


def _common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists, by slice comparisons (C speed: the
    histories are thousands of tokens and this runs before every draft)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        mid = (low + high) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid
    return low


class DraftModel:
    """A second model and context that drafts for the target (see the module docstring)."""

    def __init__(self, llm: Any, name: str) -> None:
        self.llm = llm  # a llama_cpp.Llama: keeps model and context alive
        self.name = name
        self.ctx = llm.ctx
        self.n_batch = int(llm.n_batch)
        self.n_ctx = int(llm.n_ctx())
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm.model))
        self.tokens: list[int] = []  # exactly what this model's KV cache holds
        self.start = 0  # ... which is the target's history from this index on
        self.one = (llama_cpp.llama_token * 1)()
        self.single = llama_cpp.llama_batch_get_one(self.one, 1)
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        # A recurrent or hybrid draft model cannot cut its state back to before a rejected
        # draft: its state there is saved before each draft and restored (decode_loop.py).
        self.recurrent = has_recurrent_state(llm.model)
        self.saved: np.ndarray | None = None
        self.saved_at = (-1, 0)  # (self.start, len(self.tokens)) when it was saved
        self.rereads = 0  # times it read its window again from nothing after holding some

    def draft(self, history: list[int], token: int, limit: int) -> list[int]:
        """Up to `limit` tokens the draft model expects after `history` + [token]; fewer (or
        none) where it is unsure. `history` is the target's KV record, not copied."""
        limit = min(limit, self.n_ctx - len(history) - 2)
        if limit <= 0:
            return []
        if not self._sync(history, [token]):
            return []
        if self.recurrent:
            self._save()
        out: list[int] = []
        while True:
            top, p = self._top()
            if p < P_MIN:
                break
            out.append(top)
            if len(out) >= limit or llama_cpp.llama_vocab_is_eog(self.vocab, top):
                break  # the last drafted token is never decoded here: nothing follows it
            self.one[0] = top
            if llama_cpp.llama_decode(self.ctx, self.single) != 0:
                break
            self.tokens.append(top)
        return out

    def catch_up(self, history: list[int]) -> None:
        """Read the target's prompt now (the runner calls this before the first token, so
        it counts in the time to first token like the target's own prompt reading), not
        inside the reply at the first draft."""
        self._sync(history, [], logits=False)

    def _sync(self, history: list[int], tail: list[int], logits: bool = True) -> bool:
        """Bring the KV cache to history + tail (history from self.start on), reusing the
        common prefix; with `logits`, the last token is decoded last, for its logits."""
        held = self.tokens
        # It holds history[start:]: the window it reads from (see WINDOW).
        start = self.start if self.start <= len(history) else 0
        view = history[start:]
        common = _common_prefix(held, view)
        if common == len(view) and tail:
            # It may hold the tail too (the first tokens of its earlier draft).
            common += _common_prefix(held[common:], tail)
        total = len(view) + len(tail)
        if common == total and (not logits or not total):
            return True  # nothing to read, no logits needed
        common = min(common, total - 1)  # the last token is decoded again for its logits
        missing = [*view[common:], *tail]
        if common == 0 or len(missing) > WINDOW:
            # Nothing to build on, or too much to read (a chat restored from its saved state
            # skipped the target's prefill): read only the newest WINDOW tokens.
            start = max(0, len(history) + len(tail) - WINDOW)
            common, missing = 0, [*history[start:], *tail]
        if not missing or min(missing) < 0:
            return False  # an image (negative pseudo id): the draft model cannot read it
        if common < len(held):
            mem = llama_cpp.llama_get_memory(self.ctx)
            if common and not llama_cpp.llama_memory_seq_rm(mem, 0, common, -1):
                common = self._restore(start, common)  # a recurrent state: to its save
                missing = [*view, *tail][common:]
            if common == 0:
                llama_cpp.llama_memory_clear(mem, True)
                missing = [*history[start:], *tail]
                self.rereads += bool(held)
            del held[common:]
            if common < self.saved_at[1]:  # the saved state holds tokens no longer kept
                self.saved_at = (-1, 0)
        self.start = start
        if not self._decode(missing):
            return False
        held.extend(missing)
        return True

    def _save(self) -> None:
        self.saved = save_partial(self.ctx, self.saved)
        self.saved_at = (self.start, len(self.tokens)) if self.saved is not None else (-1, 0)

    def _restore(self, start: int, common: int) -> int:
        """The state saved before the last draft, where it is a prefix of what is kept: how
        many tokens the cache then holds (0: nothing usable, read from the start)."""
        saved_start, n = self.saved_at
        if self.saved is None or saved_start != start or not 0 < n <= common:
            return 0
        mem = llama_cpp.llama_get_memory(self.ctx)
        if not restore_partial(self.ctx, self.saved) \
                or not llama_cpp.llama_memory_seq_rm(mem, 0, n, -1):
            return 0
        return n

    def _decode(self, tokens: list[int]) -> bool:
        """Read `tokens` in n_batch slices, logits for the last one only (batch_get_one)."""
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            array = (llama_cpp.llama_token * len(chunk))(*chunk)
            if llama_cpp.llama_decode(self.ctx, llama_cpp.llama_batch_get_one(
                    array, len(chunk))) != 0:
                # Full or failed: start clean next time rather than draft from a broken cache.
                llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
                self.tokens.clear()
                return False
        return True

    def _top(self) -> tuple[int, float]:
        """The draft model's greedy choice after its last decode, with its probability."""
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, -1),
                                       shape=(self.n_vocab,))
        top = int(logits.argmax())
        return top, float(1.0 / np.exp(logits - logits[top]).sum())

    def close(self) -> None:
        self.tokens = []
        self.llm = None


def load_draft(path: str, target: GGUFInfo, open_model: Callable[..., Any],
               **kwargs: Any) -> tuple[DraftModel | None, str | None]:
    """The draft model at `path` opened with the target's settings (`kwargs`: n_ctx,
    threads, GPU layers), or None and one sentence saying why not. Never raises: a draft
    model that cannot be used must not stop the target from loading."""
    name = Path(path).name
    try:
        info = read_gguf(path)
        why = incompatibility(target, info)
        if why is not None:
            return None, why
        if info.is_embedding_model:
            return None, (f"{name} is an embedding model and cannot draft, so the model runs "
                          "without a draft model.")
        llm = open_model(path, logits_all=False, swa_full=True, verbose=False, **kwargs)
        warm_up(llm.ctx, llm.model)
    except HearthError as exc:
        return None, f"The draft model is not used: {exc.message}"
    except (ValueError, RuntimeError, OSError) as exc:
        return None, (f"llama.cpp could not load the draft model {name} ({exc}), so the model "
                      "runs without one.")
    return DraftModel(llm, name), None
