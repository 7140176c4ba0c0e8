"""A hybrid model (recurrent short-convolution layers beside attention, llama.cpp's LFM2) in the
real worker: drafting stays exact; follow-ups, regenerations and edits reuse the cache through
checkpoints of the recurrent state and answer as a fresh read does.

llama_memory_seq_rm cannot cut a recurrent state back, so a rejected draft used to stay in it:
on this model the logits after one rejected draft had cosine 0.15 with the right ones, and
greedy replies with drafting parted from those without within 10-90 tokens. Drafting now
saves the recurrent state before each verify step and replays the kept tokens
(decode_loop.TokenStream._replay). The model is synthetic (hybrid_path): random weights, a
real tokenizer, a real llama.cpp graph and cache."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from desktop.bench import chat_format
from desktop.core.chat.templates import render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.engine_worker.decode_loop import TokenStream
from desktop.engine_worker.recurrent_checkpoints import RecurrentCheckpoints
from desktop.engine_worker.runner import Runner, open_model, warm_up
from tests.engine.greedy_ties import assert_same_greedy
from tests.engine.logits import cosine, last_logits

PROMPTS = ["The quick brown fox jumps over the lazy dog. " * 6,
           "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n" * 3,
           "one two three four five six seven eight nine ten " * 5,
           "Paris is the capital of France. Berlin is the capital of Germany. " * 4]


@pytest.fixture(scope="module")
def hybrid(hybrid_path: Path) -> Runner:
    runner = Runner()
    runner.llm = open_model(str(hybrid_path), n_ctx=2048, n_batch=512, n_ubatch=512,
                            logits_all=False, verbose=False)
    warm_up(runner.llm.ctx, runner.llm.model)
    return runner


def _read(llm, tokens: list[int]):  # noqa: ANN001, ANN202
    """A fresh cache holding `tokens`; the logits for the token after them."""
    mem = llama_cpp.llama_get_memory(llm.ctx)
    llama_cpp.llama_memory_clear(mem, True)
    array = (llama_cpp.llama_token * len(tokens))(*tokens)
    assert llama_cpp.llama_decode(llm.ctx, llama_cpp.llama_batch_get_one(array, len(tokens))) == 0
    return last_logits(llm).copy()


def test_the_model_is_hybrid_and_cannot_cut_its_state_back(hybrid: Runner) -> None:
    llm = hybrid.llm
    assert llama_cpp.llama_model_is_hybrid(llm.model)
    _read(llm, llm.tokenize(b"one two three four", add_bos=False))
    assert not llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), 0, 2, -1)


@pytest.mark.parametrize("kept", [0, 1, 2])
def test_a_rejected_draft_leaves_the_state_a_fresh_read_has(hybrid: Runner, kept: int) -> None:
    """A verify step whose draft is right for `kept` tokens and wrong after: the cache then
    holds exactly the prompt, the step's token and those `kept`, and the next logits are the
    ones reading those tokens from scratch gives."""
    llm = hybrid.llm
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    prompt = llm.tokenize(b"The quick brown fox jumps over the lazy dog and then", add_bos=False)
    true = [int(_read(llm, prompt).argmax())]
    for _ in range(kept + 1):  # the model's own greedy continuation
        true.append(int(_read(llm, prompt + true).argmax()))
    wrong = [t for t in (5, 6, 7, 8) if t != true[kept + 1]][:3]
    _read(llm, prompt)
    stream = TokenStream(llm.ctx, vocab, None, list(prompt), speculate=True, greedy=True)
    assert stream.replay
    stream._verify(true[0], true[1:kept + 1] + wrong)
    assert list(stream.queue) == true[1:kept + 2]  # the kept drafts, then the true next token
    assert stream.replays == 1 and stream.in_kv == kept
    mem = llama_cpp.llama_get_memory(llm.ctx)
    assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == len(prompt) + kept
    # Decode the true next token over what the step left, against a fresh read.
    array = (llama_cpp.llama_token * 1)(true[kept + 1])
    assert llama_cpp.llama_decode(llm.ctx, llama_cpp.llama_batch_get_one(array, 1)) == 0
    after = last_logits(llm).copy()
    fresh = _read(llm, prompt + true[:kept + 2])
    assert int(after.argmax()) == int(fresh.argmax())
    assert cosine(after, fresh) > 0.9999


def test_greedy_replies_with_drafting_are_those_without(tmp_path: Path, hybrid_path: Path,
                                                        hybrid: Runner) -> None:
    fmt = chat_format(str(hybrid_path))
    client = EngineClient(tmp_path / "engine.log")
    replays = 0
    try:
        client.load(LoadOptions(str(hybrid_path), n_ctx=2048))
        for text in PROMPTS:
            parts = render_parts(fmt, [{"role": "user", "content": text}])
            asked = {"temperature": 0, "max_tokens": 100, "ignore_eos": True,
                     "return_tokens": True}
            plain = client.generate(parts, {**asked, "speculative": False}).wait()
            drafted = client.generate(parts, {**asked, "speculative": True}).wait()
            assert plain["prompt_ids"] == drafted["prompt_ids"]
            assert_same_greedy(hybrid.llm, plain["prompt_ids"], plain["tokens"],
                               drafted["tokens"])
            assert drafted["speculative"] and "spec_replays" in drafted  # replay is on
            replays += drafted["spec_replays"]
    finally:
        client.shutdown()
    # How many drafts were rejected depends on drafting's back-off, which follows the measured
    # cost of each step (on a quiet machine, 6 drafts across these 4 replies were); the forced
    # rejections above check the replay itself.
    print(f"drafts taken back by replaying: {replays}")


def _chats(first_reply: str) -> dict[str, list[dict[str, str]]]:
    """The turns that branch off a first exchange, each a place a checkpoint serves."""
    first = [{"role": "user", "content": PROMPTS[0]}]
    answered = [*first, {"role": "assistant", "content": first_reply}]
    return {
        "regenerate": first,  # the same prompt again: cut before its last token
        "follow-up": [*answered, {"role": "user", "content": "And then?"}],  # appends
        "edit": [*answered, {"role": "user", "content": "No, tell me more."}],  # cut there
        # The history holds another reply than the one generated (a reasoning model's
        # without its thinking): cut where that reply started.
        "other reply": [*first, {"role": "assistant", "content": "Something shorter."},
                        {"role": "user", "content": "And then?"}],
    }


def test_branching_turns_restore_a_checkpoint_and_answer_as_a_fresh_read(
        tmp_path: Path, hybrid_path: Path, hybrid: Runner) -> None:
    """A regeneration, a follow-up, an edit of the last message and a history with another
    reply each read only what follows the point they branch from (a hybrid model's cache can
    be cut back only to a checkpoint: recurrent_checkpoints.py), and answer as a worker that
    reads the whole prompt from scratch does."""
    fmt = chat_format(str(hybrid_path))
    asked = {"temperature": 0, "max_tokens": 24, "ignore_eos": True, "speculative": False,
             "return_tokens": True}
    first_prompt = render_parts(fmt, _chats("")["regenerate"])
    runs: dict[str, dict[str, dict]] = {"cached": {}, "fresh": {}}
    for way in runs:
        client = EngineClient(tmp_path / f"{way}.log")
        try:
            client.load(LoadOptions(str(hybrid_path), n_ctx=2048))
            first = client.generate(first_prompt, asked)
            first_done = first.wait()
            for name, chat in _chats("".join(first.text)).items():
                if way == "fresh":  # another chat in between: nothing to build on
                    client.generate(render_parts(fmt, [{"role": "user", "content": "Hi."}]),
                                    asked).wait()
                runs[way][name] = client.generate(render_parts(fmt, chat), asked).wait()
        finally:
            client.shutdown()
    n_first = first_done["prompt_tokens"]
    ends = {"regenerate": n_first - 1, "follow-up": None, "edit": None,
            "other reply": n_first}
    for name, done in runs["cached"].items():
        fresh = runs["fresh"][name]
        assert fresh["cached_tokens"] == 0
        assert done["prompt_ids"] == fresh["prompt_ids"], name
        if ends[name] is not None:
            assert done["cached_tokens"] == ends[name], name
        else:  # past the first reply: all of the history before the new message
            assert done["cached_tokens"] > n_first + 8, name
        # Equal, or parted at a near-tie: the cached part was read in other batches (the
        # reply one token at a time) than the fresh read (greedy_ties.py).
        assert_same_greedy(hybrid.llm, fresh["prompt_ids"], fresh["tokens"], done["tokens"])


def test_a_checkpoint_llama_cpp_refuses_is_dropped_and_the_prompt_read_again(
        hybrid: Runner) -> None:
    llm = hybrid.llm
    mem = llama_cpp.llama_get_memory(llm.ctx)
    tokens = llm.tokenize(PROMPTS[2].encode(), add_bos=False)[:60]
    checkpoints = RecurrentCheckpoints(llm.ctx)
    _read(llm, tokens[:40])
    checkpoints.take(tokens[:40])
    array = (llama_cpp.llama_token * 20)(*tokens[40:60])
    assert llama_cpp.llama_decode(llm.ctx, llama_cpp.llama_batch_get_one(array, 20)) == 0
    assert checkpoints.cut(tokens, 60) == 60  # nothing cut: the cache is kept as it is
    assert checkpoints.cut(tokens, 50) == 40  # cut behind the state: the checkpoint's prefix
    assert llama_cpp.llama_memory_seq_pos_max(mem, 0) == 39 and checkpoints.restored == 1
    assert checkpoints.cut([*tokens[:30], 5, 6], 30) == 30  # none at or before 30: the caller's
    checkpoints.saved[0].blob[:4] = 0  # no longer a state llama.cpp accepts
    _read(llm, tokens)
    assert checkpoints.cut(tokens, 50) == 0
    assert not checkpoints.saved and llama_cpp.llama_memory_seq_pos_max(mem, 0) == -1


def test_a_hybrid_draft_model_takes_back_its_rejected_drafts(
        tmp_path: Path, hybrid_path: Path, hybrid_draft_path: Path, hybrid: Runner) -> None:
    """A recurrent draft model cannot cut its own cache back past a rejected draft either: it
    restores its state saved before the draft instead of reading its window again, and the
    target's reply is the one without drafting."""
    fmt = chat_format(str(hybrid_path))
    client = EngineClient(tmp_path / "engine.log")
    try:
        info = client.load(LoadOptions(str(hybrid_path), n_ctx=2048,
                                       draft_path=str(hybrid_draft_path)))["info"]
        assert info["draft_model"] == hybrid_draft_path.name, info.get("draft_note")
        parts = render_parts(fmt, [{"role": "user", "content": "Tell me a story about a cat."}])
        asked = {"temperature": 0, "max_tokens": 100, "ignore_eos": True, "return_tokens": True}
        plain = client.generate(parts, {**asked, "speculative": False}).wait()
        drafted = client.generate(parts, {**asked, "speculative": True}).wait()
    finally:
        client.shutdown()
    by_model = drafted["spec_source"]["draft_model"]
    # Drafting pauses after a draft that did not pay, but within 100 tokens it drafts again.
    assert by_model["steps"] >= 2 and by_model["accepted"] < by_model["drafted"], by_model
    assert drafted["spec_draft_rereads"] == 0
    assert_same_greedy(hybrid.llm, plain["prompt_ids"], plain["tokens"], drafted["tokens"])


def test_a_draft_models_saved_state_is_forgotten_with_the_tokens_it_held(
        hybrid_draft_path: Path) -> None:
    """A save from before a cache that was read again must never be restored over it."""
    from desktop.engine_worker.draft_model import DraftModel

    llm = open_model(str(hybrid_draft_path), n_ctx=1024, logits_all=False, verbose=False)
    draft = DraftModel(llm, hybrid_draft_path.name)
    first = llm.tokenize(PROMPTS[0].encode(), add_bos=False)
    assert draft.draft(first, first[-1], 4)  # confident: it drafts, after saving its state
    assert draft.saved_at == (0, len(first) + 1)
    other = llm.tokenize(PROMPTS[3].encode(), add_bos=False)  # another chat: read afresh
    draft.catch_up(other)
    assert draft.tokens == other and draft.saved_at == (-1, 0)
    llm.close()
