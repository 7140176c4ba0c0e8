"""A hybrid model (recurrent short-convolution layers beside attention, llama.cpp's LFM2) in the
real worker: drafting stays exact, follow-ups reuse the cache and answer as a fresh read does.

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
            replays += drafted["spec_replays"]
    finally:
        client.shutdown()
    assert replays > 0  # drafts were rejected, and taken back, in these replies


def test_a_follow_up_reuses_the_cache_and_answers_as_a_fresh_read(
        tmp_path: Path, hybrid_path: Path, hybrid: Runner) -> None:
    """A follow-up reads only its new part (a hybrid model's cache refuses a cut for "all
    sequences", which made every follow-up re-read the chat), and answers as a worker that
    reads the whole chat does. A regeneration, which must cut the recurrent state back, reads
    the prompt again and answers as before."""
    fmt = chat_format(str(hybrid_path))
    history = [{"role": "user", "content": PROMPTS[0]}]
    later = [{"role": "user", "content": "And then?"}]
    asked = {"temperature": 0, "max_tokens": 24, "ignore_eos": True, "speculative": False,
             "return_tokens": True}
    replies = []
    for other_first in (False, True):
        client = EngineClient(tmp_path / f"engine-{other_first}.log")
        try:
            client.load(LoadOptions(str(hybrid_path), n_ctx=2048))
            first = client.generate(render_parts(fmt, history), asked)
            first_done = first.wait()
            again = client.generate(render_parts(fmt, history), asked).wait()  # regenerate
            assert again["tokens"] == first_done["tokens"]
            chat = [*history, {"role": "assistant", "content": "".join(first.text)}, *later]
            if other_first:  # another chat in between: the follow-up is read from scratch
                client.generate(render_parts(fmt, [{"role": "user", "content": "Hi."}]),
                                asked).wait()
            follow = client.generate(render_parts(fmt, chat), asked).wait()
        finally:
            client.shutdown()
        if other_first:
            assert follow["cached_tokens"] == 0
        else:
            assert follow["cached_tokens"] > first_done["prompt_tokens"]
        replies.append(follow)
    assert replies[0]["prompt_ids"] == replies[1]["prompt_ids"]
    # Equal, or parted at a near-tie: the cached history was read in other batches (the
    # reply one token at a time) than the fresh read, and llama.cpp need not give the same
    # last bits for both (greedy_ties.py).
    assert_same_greedy(hybrid.llm, replies[1]["prompt_ids"], replies[1]["tokens"],
                       replies[0]["tokens"])
