"""The generation loop's token source: sample, decode, and verify drafts in one batch.

Runner._generate asks `next()` for each token and calls `advance(token)` to put it into the
KV cache. Without a draft that is one llama_decode of one token through a batch built once
(no ctypes arrays per token). With a prompt-lookup draft (speculative.py) the token and the
draft go into one batch with logits at exactly those positions (never logits_all: for a
262k vocabulary that is gigabytes); the sampler then picks the true next token at each
position in turn, and the draft is accepted while it agrees. Tokens past the first
disagreement are removed from the KV cache with llama_memory_seq_rm.

Why this is exact: every token is still chosen by the same sampler chain, at a position
whose KV holds exactly the tokens chosen before it, so greedy output is the same token for
token, and for sampling "draw from the model, keep the draft while the draws agree" is the
standard acceptance rule for a deterministic draft (accept x with probability p(x), else
draw from p without x), so the distribution is unchanged.

"The same" holds as far as llama.cpp gives a position the same logits in a batch as alone.
With flash attention on it did in every test here (Gemma 3); with flash attention off (the
default for 64-wide heads on a CPU, effective_flash), llama.cpp's own single-token and batched
decodes of one prompt disagreed at the 10th token of a reply (top-2 margin 0.14), so drafting
follows the batched result there. A seed gives the same distribution but not always the same sampled reply, for
the same reason (last-bit differences move a draw across a boundary now and then).

Greedy replies on the CPU chain skip the chain (`greedy=True`): llama.cpp's samplers first
copy the whole logits row into a candidate array (262,144 entries for Gemma 3), which costs
0.72 ms a token there against 0.02 ms for an argmax over the row itself (numpy, the same first
maximum llama.cpp's greedy sampler keeps). llama-server pays the copy on every token too.

A draft model (draft_model.py), when one is loaded, is the second draft source: asked only
where prompt lookup has nothing, under the same back-off, and checked by the same _verify.

Sliding-window models keep llama.cpp's small SWA cache, and a rejected draft still rolls back
with llama_memory_seq_rm alone: llama.cpp reuses a cell only once it is out of the window of
the batch's first position, so nothing a later position sees is lost (swa_checkpoints.py).

Recurrent and hybrid models (Mamba, RWKV; LFM2, Granite 4 H, Nemotron-H, Qwen3-Next) cannot be
cut back that way: their recurrent state holds only the newest position, llama_memory_seq_rm
refuses a partial cut, and a rejected draft would stay in the state and garble the rest of the
reply. For them a verify step first saves the recurrent state (llama.cpp's sequence state with
PARTIAL_ONLY, which leaves out the attention layers' KV cache, except a sliding-window cache
beside it, which it keeps: correct, but a bigger copy), and where part of the draft is
rejected restores it, cuts the attention cache back to the step's start and decodes the kept
tokens again, as llama-server does ("replay"). The save and the replay count in the step's
cost, so drafting backs off where they eat its gain.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_lib
import numpy as np

from desktop.core.engine.protocol import FLASH_MODES
from desktop.core.errors import EngineError
from desktop.engine_worker.recurrent_checkpoints import has_recurrent_state
from desktop.engine_worker.speculative import DraftPolicy, NgramIndex
from desktop.engine_worker.swa_checkpoints import restore_partial, save_partial

MAX_DRAFT = 12
EMA = 0.2  # weight of the newest single-token decode time in its moving average


@contextmanager
def flash_attention(mode: str = "auto") -> Iterator[None]:
    """Load with flash attention `mode`: "auto" (the default, as llama.cpp's own tools do),
    "on" or "off" (a model's defaults, LoadOptions.flash_attn).

    llama_cpp.Llama only offers on and off (off unless asked); "on" fails where a backend
    lacks the kernels for a model's head size, "auto" lets llama.cpp decide per device. The
    binding sets LLAMA_FLASH_ATTN_TYPE_DISABLED for flash_attn=False, so while a model loads
    that name stands for the type asked for. Measured: prefill +13%, generation +5-15% on the
    test model (README, Performance), but on a CPU generation after a long prompt is far slower
    with it for models of 64-wide heads (SmolLM2: 30 against 70 tokens/s at 1,024 tokens).
    HEARTH_FLASH_ATTN=auto/on/off overrides every load (for comparisons)."""
    override = os.environ.get("HEARTH_FLASH_ATTN", "")
    mode = override if override in FLASH_MODES else mode
    wanted = {"on": llama_lib.LLAMA_FLASH_ATTN_TYPE_ENABLED,
              "off": llama_lib.LLAMA_FLASH_ATTN_TYPE_DISABLED}.get(
        mode, llama_lib.LLAMA_FLASH_ATTN_TYPE_AUTO)
    original = llama_lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
    llama_lib.LLAMA_FLASH_ATTN_TYPE_DISABLED = wanted
    try:
        yield
    finally:
        llama_lib.LLAMA_FLASH_ATTN_TYPE_DISABLED = original


CPU_FLASH_MAX_HEAD = 64  # on a CPU, "auto" turns flash attention off up to this head size


def effective_flash(mode: str, head_size: int, kv_on_cpu: bool) -> str:
    """The flash attention mode a load uses for `mode` (a model's setting).

    "auto" is llama.cpp's choice, except where the KV cache stays on the CPU and the heads are
    64 wide or narrower: there llama.cpp's CPU kernel reads the cache row by row per head
    (and a batch of fewer than its tile of queries the same way), which made generation deep
    in a chat and short follow-ups far slower than plain attention. Measured with llama-bench
    and bench --peer-server --flash-attn off (README, Performance): SmolLM2 (64-wide heads)
    generated 54 against 23 tok/s after an ~1,900-token history and answered a follow-up in
    0.18 against 0.92 s, while reading a new long prompt 14% slower (which the worker now reads
    with flash attention anyway, in a side context: flash_prefill.py); a 64-wide synthetic model
    lost 35% of its generation at 1,024 tokens with flash attention, a 128-wide one nothing,
    and Gemma 3 (256 wide) gains from it everywhere. "on" and "off" are the user's. That
    measurement was one CPU's: where this rule applies the worker times both kernels on the
    machine itself once (narrow_on_cpu, flash_choice.py) and this rule stands only until then."""
    return "off" if narrow_on_cpu(mode, head_size, kv_on_cpu) else mode


def narrow_on_cpu(mode: str, head_size: int, kv_on_cpu: bool) -> bool:
    """Whether Automatic's choice here depends on the CPU: narrow heads, KV cache on the CPU.
    The worker then measures both kernels once per model and machine (flash_choice.py); the
    fixed rule above is what stands until then, or where that cannot be measured. Not where
    HEARTH_FLASH_ATTN overrides every load (flash_attention)."""
    return (mode == "auto" and kv_on_cpu and 0 < head_size <= CPU_FLASH_MAX_HEAD
            and os.environ.get("HEARTH_FLASH_ATTN", "") not in FLASH_MODES)


def warm_up(ctx: Any, model: Any) -> None:
    """One tiny decode right after load, then an empty cache, as llama.cpp's tools do: the
    first decode pages the weights in and starts the thread pool, which otherwise made the
    first prompt after a load ~1.4x slower than llama-completion's."""
    vocab = llama_cpp.llama_model_get_vocab(model)
    bos = llama_cpp.llama_vocab_bos(vocab)
    eos = llama_cpp.llama_vocab_eos(vocab)
    tokens = [t for t in (bos, eos) if t >= 0] or [0]
    array = (llama_cpp.llama_token * len(tokens))(*tokens)
    llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(array, len(tokens)))
    llama_cpp.llama_synchronize(ctx)
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)


class _Batch:
    """A llama_batch over arrays owned by Python (nothing to free), filled in place."""

    def __init__(self, capacity: int) -> None:
        self.token = (llama_cpp.llama_token * capacity)()
        self.pos = (llama_cpp.llama_pos * capacity)()
        self.n_seq_id = (ctypes.c_int32 * capacity)(*([1] * capacity))
        self.seq0 = (llama_cpp.llama_seq_id * 1)(0)
        seq_ptr = ctypes.cast(self.seq0, ctypes.POINTER(llama_cpp.llama_seq_id))
        self.seq_id = (ctypes.POINTER(llama_cpp.llama_seq_id) * capacity)(*([seq_ptr] * capacity))
        self.logits = (ctypes.c_int8 * capacity)(*([1] * capacity))
        self.batch = llama_cpp.llama_batch(
            n_tokens=0, token=self.token, embd=None, pos=self.pos, n_seq_id=self.n_seq_id,
            seq_id=self.seq_id, logits=self.logits)

    def fill(self, tokens: list[int], pos0: int) -> Any:
        token, pos = self.token, self.pos
        for i, t in enumerate(tokens):
            token[i] = t
            pos[i] = pos0 + i
        self.batch.n_tokens = len(tokens)
        return self.batch


class TokenStream:
    def __init__(self, ctx: Any, vocab: Any, sampler: Any, cache_tokens: list[int], *,
                 speculate: bool, eager: bool = False, drafter: Any = None,
                 greedy: bool = False) -> None:
        self.ctx = ctx
        self.vocab = vocab
        self.sampler = sampler
        # A plain greedy chain on the CPU (runner.plain_greedy): the argmax is taken here.
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab) if greedy else 0
        self.cache = cache_tokens  # the runner's record of the KV cache: appended here
        self.queue: deque[int] = deque()  # true next tokens chosen while verifying a draft
        self.in_kv = 0  # how many of the queue's first tokens the KV cache already holds
        self.one = (llama_cpp.llama_token * 1)()
        self.single = llama_cpp.llama_batch_get_one(self.one, 1)
        self.index = NgramIndex(cache_tokens) if speculate else None
        self.policy = DraftPolicy(eager=eager, max_draft=MAX_DRAFT) if speculate else None
        self.batch = _Batch(MAX_DRAFT + 1) if speculate else None
        # Where a rejected draft cannot be cut off the cache, the recurrent state it started
        # from, saved before each verify step (see the module docstring).
        self.saved: np.ndarray | None = None
        self.replays = 0
        self.replay = speculate and has_recurrent_state(llama_cpp.llama_get_model(ctx))
        self.single_s = 0.0  # moving average of one token's decode
        self.decode_s = 0.0  # all decodes of this reply, single and batched
        self.decodes = 0
        self.tokens = 0  # tokens that entered the KV cache through this stream
        # A draft model (draft_model.DraftModel) drafts where prompt lookup finds nothing.
        self.drafter = drafter if speculate else None
        if self.drafter is not None:
            self.drafter.catch_up(cache_tokens)  # reads the prompt too, before the first token
        self.rereads_before = self.drafter.rereads if self.drafter is not None else 0
        # Per draft source: [verify steps, drafted, accepted] (spec_source in the stats).
        self.sources: dict[str, list[int]] = {"lookup": [0, 0, 0], "draft_model": [0, 0, 0]}
        self.unsure = 0  # times the draft model was asked and proposed nothing

    def next(self) -> int:
        if self.queue:
            return self.queue.popleft()
        return self._pick(-1)

    def _pick(self, i: int) -> int:
        """The token at output `i` of the last decode (-1: its last output)."""
        if not self.n_vocab:
            return int(llama_cpp.llama_sampler_sample(self.sampler, self.ctx, i))
        row = llama_cpp.llama_get_logits_ith(self.ctx, i)
        if not row:
            raise EngineError("llama.cpp returned no logits for the next token.")
        return int(np.ctypeslib.as_array(row, shape=(self.n_vocab,)).argmax())

    def advance(self, token: int, left: int) -> None:
        """Put `token` into the KV cache; `left` is how many tokens may still follow it."""
        self.tokens += 1
        if self.in_kv:
            self.in_kv -= 1  # decoded while verifying the draft it was part of
            if self.index is not None:
                self.index.append(token)
            return
        if self.index is not None:
            assert self.policy is not None
            self.index.append(token)
            want = self.policy.want()
            if want and left > 1:
                draft = self.index.draft(min(want, left - 1))
                if draft:
                    self._verify(token, draft)
                    return
                # No lookup hit: the draft model, which sizes its own draft (it stops where
                # it is unsure), so it may go up to the longest draft.
                if self.drafter is not None and self._model_draft(
                        token, min(self.policy.max_draft, left - 1)):
                    return
        self.one[0] = token
        started = time.perf_counter()
        rc = llama_cpp.llama_decode(self.ctx, self.single)
        spent = time.perf_counter() - started
        if rc != 0:
            raise EngineError(f"llama.cpp could not continue the reply (llama_decode={rc}); "
                              "the context may be full.")
        self.single_s = spent if not self.single_s else self.single_s + EMA * (
            spent - self.single_s)
        self.decode_s += spent
        self.decodes += 1
        self.cache.append(token)

    def _model_draft(self, token: int, limit: int) -> bool:
        """Draft with the draft model and verify; False when it was unsure (no draft): that
        backs off like a draft that did not pay. Its time counts in what the step cost."""
        assert self.policy is not None and self.drafter is not None
        started = time.perf_counter()
        draft = self.drafter.draft(self.cache, token, limit)
        spent = time.perf_counter() - started
        if not draft:
            self.decode_s += spent
            self.unsure += 1
            self.policy.unsure()
            return False
        self._verify(token, draft, "draft_model", spent)
        return True

    def _verify(self, token: int, draft: list[int], source: str = "lookup",
                draft_s: float = 0.0) -> None:
        assert self.batch is not None and self.policy is not None
        ctx = self.ctx
        # The next position from llama.cpp itself, not len(cache_tokens): a vision model's
        # image runs need not take one position per pseudo id.
        mem = llama_cpp.llama_get_memory(ctx)
        pos0 = llama_cpp.llama_memory_seq_pos_max(mem, 0) + 1
        started = time.perf_counter()
        if self.replay:
            self._save_state()
        rc = llama_cpp.llama_decode(ctx, self.batch.fill([token, *draft], pos0))
        if rc != 0:
            raise EngineError(f"llama.cpp could not continue the reply (llama_decode={rc}); "
                              "the context may be full.")
        chosen: list[int] = []
        accepted = 0
        for i in range(len(draft) + 1):
            # The sampler picks the true token at position i: the KV holds exactly the tokens
            # chosen so far up to there, since every earlier draft token was accepted.
            picked = self._pick(i)
            chosen.append(picked)
            if i == len(draft) or picked != draft[i] \
                    or llama_cpp.llama_vocab_is_eog(self.vocab, picked):
                break
            accepted += 1
        if accepted < len(draft):
            if self.replay:
                self._replay([token, *draft[:accepted]], pos0)
            else:
                llama_cpp.llama_memory_seq_rm(mem, 0, pos0 + 1 + accepted, -1)
        spent = time.perf_counter() - started + draft_s  # a draft model's guessing counts too
        self.decode_s += spent
        self.decodes += 1
        counts = self.sources[source]
        counts[0] += 1
        counts[1] += len(draft)
        counts[2] += accepted
        self.cache.append(token)
        self.cache.extend(draft[:accepted])
        self.queue.extend(chosen)
        self.in_kv = accepted
        # Its worth: the tokens it gave over what single decodes would have in the same time.
        worth = ((accepted + 1) * self.single_s / spent if self.single_s and spent > 0
                 else 2.0 if accepted else 0.5)
        self.policy.record(len(draft), accepted, worth)

    def _save_state(self) -> None:
        """Keep the recurrent state as it is before a verify step (PARTIAL_ONLY: without the
        attention layers' KV cache, which llama_memory_seq_rm can cut)."""
        self.saved = save_partial(self.ctx, self.saved)
        if self.saved is None:
            raise EngineError("llama.cpp could not save the model's state to check a draft.")

    def _replay(self, kept: list[int], pos0: int) -> None:
        """Put the cache where a verify step that kept only `kept` (its first token and the
        accepted draft) would have left it: the saved recurrent state, the attention cache cut
        back to the step's start, and `kept` decoded again."""
        assert self.saved is not None and self.batch is not None
        ctx = self.ctx
        self.replays += 1
        restored = restore_partial(ctx, self.saved)
        mem = llama_cpp.llama_get_memory(ctx)
        if not restored or not llama_cpp.llama_memory_seq_rm(mem, 0, pos0, -1) \
                or llama_cpp.llama_decode(ctx, self.batch.fill(kept, pos0)) != 0:
            # A refused restore leaves the recurrent state empty: the next request must read
            # its prompt from the start, not build on what the record says the cache holds.
            llama_cpp.llama_memory_clear(mem, True)
            self.cache.clear()
            raise EngineError("llama.cpp could not take back a rejected draft; the reply "
                              "stops here rather than go on from a wrong state.")

    def stats(self) -> dict[str, Any]:
        policy = self.policy
        if policy is None:
            return {"speculative": False}
        out: dict[str, Any] = {
            "speculative": True,
            "spec_drafted": policy.drafted,
            "spec_accepted": policy.accepted,
            "spec_acceptance": policy.accepted / policy.drafted if policy.drafted else 0.0,
            "spec_steps": policy.steps,
            "spec_tokens_per_decode": self.tokens / self.decodes if self.decodes else 1.0,
            # Which source drafted what: prompt lookup, and the draft model when one is loaded.
            "spec_source": {
                name: {"steps": c[0], "drafted": c[1], "accepted": c[2]}
                for name, c in self.sources.items()
                if name == "lookup" or self.drafter is not None},
        }
        if self.replay:
            out["spec_replays"] = self.replays  # rejected drafts taken back by replaying
        if self.drafter is not None:
            out["spec_draft_model"] = self.drafter.name
            out["spec_draft_unsure"] = self.unsure
            # Times it read its window again from nothing (a cut its cache refused, or its
            # window slid on).
            out["spec_draft_rereads"] = self.drafter.rereads - self.rereads_before
        if self.single_s and self.decode_s:
            # What single-token decodes would have cost for the same tokens, over what the
            # reply's decodes did cost.
            out["spec_speedup_est"] = self.tokens * self.single_s / self.decode_s
        return out
