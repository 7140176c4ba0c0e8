"""Sliding-window models on llama.cpp's small SWA cache (engine_worker/swa_checkpoints.py), on
the real Gemma 3 270M (a 512-token window; its SWA cache holds 1,024 cells): cutting the cache
back behind the window goes through a checkpoint and gives the logits of a prompt read from
scratch, a cut without one would not, and rejected drafts roll back even there (the reply the same as
without drafting, up to a near-tie: greedy_ties.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient
from tests.doc_corpus import FILLER, PDF_PAGES
from tests.engine.greedy_ties import assert_same_replies
from tests.engine.logits import cosine, last_logits

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)
LONG_REPLY = {"temperature": 0, "max_tokens": 600, "ignore_eos": True, "speculative": False}


def _chat(*turns: str) -> list[dict]:
    roles = ["user", "assistant"]
    return render_parts(GEMMA, [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)])


# About 800 tokens: a reply of 600 then moves the window past the prompt's end.
DOCUMENT = "Summarise this handbook.\n\n" + "\n\n".join(
    f"Page {n}. {text}" for n, text in enumerate((PDF_PAGES + FILLER) * 2, start=1))


@pytest.fixture(scope="module")
def runner(gemma_path: Path):
    from desktop.engine_worker.runner import Runner

    runner = Runner()
    # Flash attention off: its CPU kernel sums in f16 in the order of the cache's cells, so a
    # restored window (the same cells, elsewhere in the cache) differs in the last bits (cosine
    # ~0.9995, as does a prompt's last token read alone); plain attention gives the prompt's
    # logits exactly (read the same way: _cold_last_alone), so the comparisons below can tell
    # a right window from a short one.
    runner.op_load({"path": str(gemma_path), "n_ctx": 4096, "n_threads": 2, "flash_attn": "off"},
                   lambda *a, **k: None)
    assert runner.checkpoints is not None and runner.checkpoints.n_swa == 512
    yield runner
    runner.op_unload({}, lambda *a, **k: None)


def _generate(runner: Any, parts: list[dict], params: dict) -> dict:
    events: list[tuple[str, dict]] = []
    runner.op_generate({"id": 1, "parts": parts, "params": params},
                       lambda kind, **fields: events.append((kind, fields)))
    done = [fields for kind, fields in events if kind == "done"]
    assert done, events
    return done[0] | {"text": "".join(f.get("text", "") for k, f in events if k == "tokens")}


def _cold(runner: Any, prompt: list[int]) -> np.ndarray:
    runner.cache_tokens = []  # nothing in common: read from position 0
    assert runner.prepare(prompt) == 0
    return last_logits(runner.llm)


def _cold_last_alone(runner: Any, prompt: list[int]) -> np.ndarray:
    """The prompt read from scratch as a regeneration over a restored cache reads it: all but
    its last token as a batch, the last token alone. Some CPUs give a token different last bits
    alone than in a batch (greedy_ties.py): on session 8's AMX Xeon a prompt's logits read
    whole and read this way had cosine 0.99976, while a restored window matched this way
    exactly (cosine 0.9999999, largest difference 0.0000) and a plain cut did not (0.99934)."""
    from desktop.engine_worker.runner import Decoder

    runner.cache_tokens = []
    assert runner.prepare(prompt[:-1]) == 0
    Decoder(runner.llm.ctx, 512).decode(prompt[-1:])
    runner.cache_tokens = list(prompt)
    return last_logits(runner.llm)


def _moved_past(runner: Any, n: int) -> None:
    """The cache, cut back to n tokens, no longer holds the window that token n needs."""
    assert runner.checkpoints is not None
    assert not runner.checkpoints.reaches(n), "the reply should have moved the window past n"


def test_regenerating_a_long_reply_reads_only_the_last_prompt_token(runner) -> None:
    parts = _chat(DOCUMENT)
    first = _generate(runner, parts, LONG_REPLY)
    prompt = runner.tokenize_parts(parts)
    assert first["completion_tokens"] == 600 and len(runner.cache_tokens) > 1024
    _moved_past(runner, len(prompt) - 1)
    restored = runner.checkpoints.restored
    assert runner.prepare(prompt) == len(prompt) - 1  # as a regenerate asks for it
    assert runner.checkpoints.restored == restored + 1
    warm = last_logits(runner.llm)
    cold = _cold_last_alone(runner, prompt)
    assert cosine(warm, cold) > 0.99999 and warm.argmax() == cold.argmax()


def test_editing_the_last_message_restores_where_that_turn_started(runner) -> None:
    from desktop.engine_worker.state_cache import restore, snapshot

    first = _generate(runner, _chat(DOCUMENT), LONG_REPLY)
    turn_start = len(runner.cache_tokens)  # the reply is kept as its own token ids
    saved = snapshot(runner.llm.ctx)  # the whole cache here, as a chat's saved state holds it
    _generate(runner, _chat(DOCUMENT, first["text"], "Which page is about travel?"), LONG_REPLY)
    edited = runner.tokenize_parts(_chat(DOCUMENT, first["text"], "Which page is about pay?"))
    _moved_past(runner, turn_start + 8)
    restored = runner.checkpoints.restored
    assert runner.prepare(edited) == turn_start
    assert runner.checkpoints.restored == restored + 1
    warm = last_logits(runner.llm)
    # The same as a saved state of the cache at that point gives...
    assert restore(runner.llm.ctx, saved)
    runner.cache_tokens = edited[:turn_start]
    assert runner.prepare(edited) == turn_start
    assert cosine(warm, last_logits(runner.llm)) > 0.99999
    # ...and the prompt's logits, up to the order in which the window's cells are summed (a
    # restored window sits elsewhere in the cache: cosine ~0.9994 for either).
    cold = _cold(runner, edited)
    assert cosine(warm, cold) > 0.999 and warm.argmax() == cold.argmax()


def test_a_cut_behind_the_window_without_a_checkpoint_is_read_from_scratch(runner) -> None:
    import llama_cpp

    from desktop.engine_worker.runner import Decoder

    parts = _chat(DOCUMENT)
    prompt = runner.tokenize_parts(parts)
    last_alone = _cold_last_alone(runner, prompt)
    cold = _cold(runner, prompt)
    _generate(runner, parts, LONG_REPLY)
    runner.checkpoints.clear()
    _moved_past(runner, len(prompt) - 1)
    assert runner.prepare(prompt) == 0  # read again from the start...
    assert cosine(last_logits(runner.llm), cold) > 0.99999
    # ...because the cache cut back plainly has lost part of the window: its logits are not
    # those of the prompt.
    _generate(runner, parts, LONG_REPLY)
    mem = llama_cpp.llama_get_memory(runner.llm.ctx)
    assert llama_cpp.llama_memory_seq_rm(mem, 0, len(prompt) - 1, -1)
    Decoder(runner.llm.ctx, 512).decode(prompt[-1:])
    runner.cache_tokens = []  # the runner's record no longer says what the cache holds
    # Against the same prompt read the same way (its last token alone), where a restored
    # window gives cosine > 0.99999: 0.998 on session 7's EPYC, 0.9993 on session 8's Xeon.
    assert cosine(last_logits(runner.llm), last_alone) < 0.9999


def test_a_drafted_reply_past_the_window_leaves_the_whole_window_in_the_cache(runner) -> None:
    """Verify batches written over reused cells, then cut back by rejected drafts, lose no cell a
    later position attends to: llama.cpp keeps a sequence's positions contiguous (it purges
    everything older than a cell it overwrites), so one lost cell would move pos_min past what
    the next token needs."""
    parts = _chat(DOCUMENT.replace("Summarise this handbook.",
                                   "Repeat this handbook, page by page, word for word."))
    done = _generate(runner, parts, {"temperature": 0, "max_tokens": 400, "documents": True,
                                     "speculative": True})
    assert done["spec_drafted"] > done["spec_accepted"] > 0, done
    assert len(runner.cache_tokens) > 1024 + 64  # the ring has turned while drafting
    assert runner.checkpoints.reaches(len(runner.cache_tokens))


def test_which_models_get_checkpoints(runner, smollm_path: Path) -> None:
    from desktop.engine_worker.runner import open_model
    from desktop.engine_worker.swa_checkpoints import full_size_cache, worth_checkpoints

    assert worth_checkpoints(runner.llm.model, "gemma3") == 512
    smol = open_model(str(smollm_path), n_ctx=512, n_threads=2, logits_all=False, verbose=False)
    assert worth_checkpoints(smol.model, "llama") == 0  # no window
    # Llama 4's chunked windows keep the full-size cache, and no checkpoints.
    assert full_size_cache("llama4") and not full_size_cache("gemma3")
    assert worth_checkpoints(runner.llm.model, "llama4") == 0


def test_rejected_drafts_roll_back_past_the_window(engine: EngineClient, gemma_runner: Any) -> None:
    """A long document answer with drafting on, its prompt and reply well past the SWA cache's
    1,024 cells, is token for token the answer without drafting."""
    parts = _chat(DOCUMENT.replace("Summarise this handbook.",
                                   "Repeat this handbook, page by page, word for word."))
    params = {"temperature": 0, "max_tokens": 400, "stop": GEMMA.stop, "return_tokens": True}
    replies = []
    for speculative in (False, True):
        engine.generate(_chat("Unrelated."), {**params, "max_tokens": 1}).wait()  # cold reads
        generation = engine.generate(parts, {**params, "speculative": speculative,
                                             "documents": True})
        generation.wait()
        done = generation.result
        assert done is not None and done["prompt_tokens"] + done["completion_tokens"] > 1124
        replies.append(done)
    assert done["spec_drafted"] > done["spec_accepted"] > 0, done
    assert_same_replies(gemma_runner, parts, *replies)


def test_a_chat_state_saved_with_the_full_size_window_cache_still_restores(
        tmp_path: Path, gemma_path: Path) -> None:
    """Versions before session 7 kept the full-size SWA cache. llama.cpp saves only the cells
    inside the window either way, so their saved chat states fit the small cache: one restores,
    and the chat goes on from it with the prompt's own logits."""
    import llama_cpp

    from desktop.engine_worker.runner import Decoder, Runner, open_model
    from desktop.engine_worker.state_cache import StateCache, model_fingerprint, snapshot

    parts = _chat(DOCUMENT, "Noted. In short:\n\n" + "\n\n".join(PDF_PAGES * 3),
                  "What is on page 3?")
    states = tmp_path / "states"
    old = open_model(str(gemma_path), n_ctx=4096, n_batch=512, n_ubatch=512, n_threads=2,
                     logits_all=False, swa_full=True, verbose=False)
    runner = Runner()
    runner.llm = old  # to tokenize as the worker does
    prompt = runner.tokenize_parts(parts)
    history = prompt[:-8]
    assert len(history) > 1024  # past the small cache's size
    Decoder(old.ctx, 512).decode(history)
    vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(old.model))
    StateCache(model_fingerprint(gemma_path), vocab, 1 << 30, states).put(
        "chat-1", history, snapshot(old.ctx))
    runner.llm = old = None

    fresh = Runner()
    fresh.op_load({"path": str(gemma_path), "n_ctx": 4096, "n_threads": 2,
                   "state_dir": str(states)}, lambda *a, **k: None)
    try:
        assert fresh.switch_session("chat-1") and fresh.cache_tokens == history
        assert fresh.prepare(prompt) == len(history)
        warm = last_logits(fresh.llm)
        cold = _cold(fresh, prompt)
        assert cosine(warm, cold) > 0.999 and warm.argmax() == cold.argmax()
    finally:
        fresh.op_unload({}, lambda *a, **k: None)
