"""Comparing greedy replies made with and without drafting, token by token.

Drafted tokens are checked in one batched decode; the reply without drafting decodes one token
at a time. llama.cpp does not promise both give a position the same logits, and on some CPUs
they do not: on an AVX-512 AMD EPYC here, Gemma 3 270M's logits for the same 20-token prefix
read one token at a time and read as a batch differed by up to 1.5 (max over the vocabulary)
and by ~0.15 at the top, with or without flash attention and weight repacking. Where the top
two tokens are that close, either reply is the model's greedy choice. So the replies must be
identical up to their first difference, and there the two tokens must be the model's top
choices within NEAR_TIE of each other, as the reply without drafting saw them (recomputed
here the same way: the prompt as a batch, then one token at a time). A drafting bug (a draft
token kept that the model did not choose, a stale cell in the KV cache) shows as a difference
at a clear choice, which fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.engine.logits import last_logits

NEAR_TIE = 0.5  # logits; measured differences between the two decode paths stay below ~0.2


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def one_at_a_time_logits(llm: Any, prompt: list[int], reply: list[int]) -> np.ndarray:
    import llama_cpp

    from desktop.engine_worker.runner import Decoder

    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    decoder = Decoder(llm.ctx, 512)
    decoder.decode(prompt)
    for token in reply:
        decoder.decode([token])
    return last_logits(llm)


def assert_same_greedy(llm: Any, prompt: list[int], plain: list[int], drafted: list[int]) -> None:
    """`plain` and `drafted` (greedy replies to `prompt`) are the same, or first differ at a
    near-tie of the model's top two tokens."""
    i = first_difference(plain, drafted)
    if i is None:
        return
    assert i < len(plain) and i < len(drafted), f"one reply stops early, at token {i}"
    logits = one_at_a_time_logits(llm, prompt, plain[:i])
    top2 = [int(t) for t in np.argsort(logits)[-2:][::-1]]
    gap = float(logits[plain[i]] - logits[drafted[i]])
    assert top2[0] == plain[i] and set(top2) == {plain[i], drafted[i]} and gap < NEAR_TIE, (
        f"the replies differ at token {i} ({plain[i]} vs {drafted[i]}), which is no near-tie: "
        f"top two {top2}, gap {gap:.3f}")


def assert_same_replies(runner: Any, parts: list[dict], plain: dict, drafted: dict) -> None:
    """The same for two `done` events of the worker (asked with return_tokens); `runner` holds
    the model in this process (the gemma_runner fixture)."""
    assert_same_greedy(runner.llm, runner.tokenize_parts(parts), plain["tokens"], drafted["tokens"])
    if plain["tokens"] == drafted["tokens"]:
        assert drafted["stop_reason"] == plain["stop_reason"]
