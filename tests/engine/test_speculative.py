"""Speculative decoding (prompt-lookup drafts) in the real worker with the real model: the
output is the same token for token as without it (up to llama.cpp's batch numerics at a
near-tie: greedy_ties.py), document answers draft and accept, and the
KV cache holds no rejected draft afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient
from desktop.engine_worker.speculative import DraftPolicy, NgramIndex
from tests.doc_corpus import FILLER, PDF_PAGES
from tests.engine.greedy_ties import assert_same_replies

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)
GREEDY = {"temperature": 0, "stop": GEMMA.stop}


def _doc_question(question: str, passages: list[str]) -> list[dict]:
    # The same shape as ChatService.attach_excerpts puts into the newest user turn.
    blocks = "\n\n".join(f"[{n}] handbook.pdf, page {n}\n{text}"
                         for n, text in enumerate(passages, start=1))
    content = (f"Excerpts from my documents (cite them by number, like [1]):\n\n{blocks}\n\n"
               "Answer from the excerpts when they are relevant and cite them. If they do not "
               f"contain the answer, say so.\n\nQuestion: {question}")
    return render_parts(GEMMA, [{"role": "user", "content": content}])


def _chat(*turns: str) -> list[dict]:
    roles = ["user", "assistant"]
    return render_parts(GEMMA, [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)])


PROMPTS = [
    ("doc quote", _doc_question("Quote the vacation policy word for word.",
                                [PDF_PAGES[0], FILLER[0], PDF_PAGES[1]]), True),
    ("doc answer", _doc_question("How long do I have to hand in expenses, and what about "
                                 "receipts?", [PDF_PAGES[1], FILLER[2], PDF_PAGES[2]]), True),
    ("doc summary", _doc_question("Summarise all three excerpts, repeating their key sentences.",
                                  PDF_PAGES), True),
    ("chat", _chat("Write a short poem about the sea."), False),
    ("list", _chat("List the days of the week, one per line, twice."), False),
]


def _reply(engine: EngineClient, parts: list[dict], params: dict, cold: bool = True
           ) -> tuple[str, dict]:
    if cold:
        # Both runs read their prompt from scratch: a prompt re-read on top of the cache
        # (its last token decoded alone) can differ in the last bits from one read whole,
        # which is not what this file tests.
        engine.generate(_chat("Unrelated."), {**GREEDY, "max_tokens": 1}).wait()
    generation = engine.generate(parts, {**params, "return_tokens": True})
    text = "".join(generation)
    assert generation.result is not None
    return text, generation.result


@pytest.mark.parametrize(("name", "parts", "documents"), PROMPTS, ids=[p[0] for p in PROMPTS])
def test_greedy_output_is_identical_with_and_without_drafting(
        engine: EngineClient, gemma_runner: Any, name: str, parts: list[dict],
        documents: bool) -> None:
    params = {**GREEDY, "max_tokens": 96}
    plain, plain_done = _reply(engine, parts, {**params, "speculative": False})
    drafted, done = _reply(engine, parts, {**params, "speculative": True,
                                           "documents": documents})
    assert plain_done["speculative"] is False and done["speculative"] is True
    assert_same_replies(gemma_runner, parts, plain_done, done)
    if documents:
        # An answer over passages repeats them: drafts are made and some are accepted.
        assert done["spec_drafted"] > 0 and done["spec_accepted"] > 0, done
        assert done["spec_tokens_per_decode"] > 1.0


def test_rejected_drafts_leave_nothing_in_the_kv_cache(engine: EngineClient) -> None:
    parts = PROMPTS[2][1]
    first, done = _reply(engine, parts, {**GREEDY, "max_tokens": 120, "speculative": True,
                                         "documents": True})
    assert done["spec_drafted"] > done["spec_accepted"] > 0, "the reply must reject some drafts"
    turns = _chat_from(parts, first, "Which excerpt mentions 30 days?")
    warm, warm_done = _reply(engine, turns, {**GREEDY, "max_tokens": 40, "speculative": False},
                             cold=False)
    assert warm_done["cached_tokens"] >= done["prompt_tokens"]  # read on top of the cache
    cold, cold_done = _reply(engine, turns, {**GREEDY, "max_tokens": 40, "speculative": False})
    assert cold_done["cached_tokens"] < 32  # read from scratch
    assert warm == cold


def _chat_from(parts: list[dict], reply: str, question: str) -> list[dict]:
    """The document turn, the reply as generated, and a follow-up question."""
    user_text = "".join(p["text"] for p in parts if not p.get("special"))
    return render_parts(GEMMA, [{"role": "user", "content": user_text},
                                {"role": "assistant", "content": reply},
                                {"role": "user", "content": question}])


def test_ngram_index_drafts_what_followed_the_longest_match() -> None:
    index = NgramIndex([1, 2, 3, 4, 5, 9, 2, 3, 7, 8])
    index.append(2)
    index.append(3)
    # "2 3" occurred twice; the latest occurrence (followed by 7 8) wins.
    assert index.draft(4) == [7, 8, 2, 3]
    index.append(4)  # "2 3 4" now only matches the first occurrence
    assert index.draft(3) == [5, 9, 2]
    index.append(42)
    assert index.draft(3) == []  # nothing ends in "4 42"
    assert index.draft(0) == []


def test_draft_policy_grows_on_hits_and_backs_off_on_misses() -> None:
    policy = DraftPolicy(eager=False, max_draft=12)
    assert policy.want() == 4
    policy.record(4, 4, worth=3.0)
    assert policy.want() == 6  # a fully accepted draft grows the next one
    policy.record(6, 0, worth=0.4)
    # A draft that did not pay: the next is short, after a pause of 2 tokens.
    assert [policy.want() for _ in range(3)] == [0, 0, 1]
    policy.record(1, 1, worth=2.0)
    assert policy.want() == 2 and policy.misses == 0  # it paid, and pays on average
    assert DraftPolicy(eager=True, max_draft=12).want() == 12


def test_draft_policy_pauses_while_drafting_does_not_pay_on_average() -> None:
    policy = DraftPolicy(eager=False, max_draft=12)
    policy.record(4, 0, worth=0.5)
    # A draft that did not pay: the next is short, after a pause of 2 tokens.
    assert [policy.want() for _ in range(3)] == [0, 0, 1]
    policy.record(1, 0, worth=0.5)
    assert [policy.want() for _ in range(5)] == [0, 0, 0, 0, 1]  # then 4 tokens
    # A lucky step alone does not end the pauses while the average says drafting loses
    # (SmolLM2's story: a 3-token batch costs two single tokens, 1 draft in 3 accepted).
    policy.record(1, 1, worth=1.3)
    assert policy.worth < 1.0 and policy.misses == 3
    assert [policy.want() for _ in range(9)] == [0] * 8 + [2]
    # Steps that pay bring the average back above 1: no more pauses.
    policy.record(2, 2, worth=2.5)
    policy.record(3, 3, worth=2.5)
    assert policy.worth >= 1.0 and policy.misses == 0 and policy.want() > 0

