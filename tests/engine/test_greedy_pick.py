"""The decode loop's own argmax for plain greedy replies (decode_loop.TokenStream, greedy=True)
picks exactly the tokens llama.cpp's greedy sampler chain picks, on single decodes and inside
verified drafts, on the real model in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.engine_worker.runner import plain_greedy
from tests.doc_corpus import PDF_PAGES

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)


def _prompt(text: str) -> str:
    return "".join(p["text"] for p in render_parts(GEMMA, [{"role": "user", "content": text}]))


PROMPTS = [
    # Gemma 3 270M is a base model: it continues text well and answers a chat turn poorly.
    "The printing press changed Europe in three ways. First,",
    # Passages to repeat: with drafting on, most tokens come out of verified batches.
    _prompt("Quote these excerpts word for word:\n\n" + "\n\n".join(PDF_PAGES)),
]


@pytest.fixture(scope="module")
def gemma(gemma_path: Path):
    from desktop.engine_worker.runner import open_model, warm_up

    llm = open_model(str(gemma_path), n_ctx=2048, n_batch=512, n_ubatch=512, n_threads=2,
                     logits_all=False, swa_full=True)
    warm_up(llm.ctx, llm.model)
    return llm


HOT = {"temperature": 1.5, "seed": 3}  # a chain the own argmax must not consult


def _reply(llm, prompt: str, *, greedy: bool, speculate: bool, n: int = 48,
           chain_params: dict | None = None) -> list[int]:
    import llama_cpp

    from desktop.engine_worker.decode_loop import TokenStream
    from desktop.engine_worker.runner import Decoder, build_sampler

    ctx = llm.ctx
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    Decoder(ctx, llm.n_batch).decode(tokens)
    cache = list(tokens)
    chain = build_sampler(chain_params or {"temperature": 0},
                          llama_cpp.llama_vocab_n_tokens(vocab), vocab)
    try:
        stream = TokenStream(ctx, vocab, chain, cache, speculate=speculate, eager=speculate,
                             greedy=greedy)
        out: list[int] = []
        for _ in range(n):
            token = stream.next()
            out.append(token)
            stream.advance(token, n - len(out) + 1)
    finally:
        llama_cpp.llama_sampler_free(chain)
    if speculate:
        assert stream.stats()["spec_drafted"] > 0, "the quoted excerpts must be drafted"
    return out


@pytest.mark.parametrize(("prompt", "speculate"),
                         [(PROMPTS[0], False), (PROMPTS[1], False), (PROMPTS[1], True)],
                         ids=["chat", "quote", "quote-drafted"])
def test_own_argmax_picks_what_the_greedy_chain_picks(gemma, prompt: str,
                                                      speculate: bool) -> None:
    chain = _reply(gemma, prompt, greedy=False, speculate=speculate)
    # The own argmax is handed a hot sampling chain: were that chain consulted, the reply
    # would be a sampled one (test_the_hot_chain_alone_samples_another_reply).
    own = _reply(gemma, prompt, greedy=True, speculate=speculate, chain_params=HOT)
    assert own == chain


def test_the_hot_chain_alone_samples_another_reply(gemma) -> None:
    greedy = _reply(gemma, PROMPTS[0], greedy=False, speculate=False)
    assert _reply(gemma, PROMPTS[0], greedy=False, speculate=False, chain_params=HOT) != greedy


def test_plain_greedy_only_for_a_chain_of_greedy_alone() -> None:
    assert plain_greedy({"temperature": 0})
    assert plain_greedy({"temperature": 0.0, "repeat_penalty": 1.0, "stop": ["x"]})
    assert not plain_greedy({})  # the default temperature samples
    assert not plain_greedy({"temperature": 0.7})
    assert not plain_greedy({"temperature": 0, "repeat_penalty": 1.1})
    assert not plain_greedy({"temperature": 0, "json_schema": {"type": "object"}})
