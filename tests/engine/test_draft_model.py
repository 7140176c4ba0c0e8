"""Speculative decoding with a draft model, in the real worker with the real models: greedy
output is the same token for token with and without it (up to a near-tie: greedy_ties.py), the draft model's guesses are
accepted (the Gemma file drafting for itself: same vocabulary), and a draft model with another
vocabulary (SmolLM2 for Gemma) is refused in one sentence while the model still answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from tests.doc_corpus import FILLER, PDF_PAGES
from tests.engine.greedy_ties import assert_same_replies

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)
GREEDY = {"temperature": 0, "stop": GEMMA.stop, "max_tokens": 48}


def _doc_question() -> list[dict]:
    # The shape ChatService.attach_excerpts gives a turn with document excerpts.
    blocks = "\n\n".join(f"[{n}] handbook.pdf, page {n}\n{text}"
                         for n, text in enumerate([PDF_PAGES[1], FILLER[2]], start=1))
    content = (f"Excerpts from my documents (cite them by number, like [1]):\n\n{blocks}\n\n"
               "Answer from the excerpts when they are relevant and cite them.\n\nQuestion: "
               "How long do I have to hand in expenses?")
    return render_parts(GEMMA, [{"role": "user", "content": content}])


PROMPTS = [
    ("document answer", _doc_question(), True),
    ("chat", render_parts(GEMMA, [{"role": "user", "content": "List the days of the week, "
                                   "one per line, twice."}]), False),
]


@pytest.fixture(scope="module")
def drafting_engine(tmp_path_factory: pytest.TempPathFactory, gemma_path: Path
                    ) -> Iterator[EngineClient]:
    client = EngineClient(tmp_path_factory.mktemp("draft-engine") / "engine.log")
    loaded = client.load(LoadOptions(str(gemma_path), n_ctx=2048, draft_path=str(gemma_path)))
    assert loaded["info"]["draft_model"] == gemma_path.name, loaded["info"]
    assert loaded["info"]["draft_note"] is None
    yield client
    client.shutdown()


def _reply(engine: EngineClient, parts: list[dict], params: dict) -> tuple[str, dict]:
    # Both runs read their prompt from scratch (see test_speculative._reply for why).
    engine.generate(render_parts(GEMMA, [{"role": "user", "content": "Unrelated."}]),
                    {**GREEDY, "max_tokens": 1}).wait()
    generation = engine.generate(parts, {**params, "return_tokens": True})
    text = "".join(generation)
    assert generation.result is not None
    return text, generation.result


def test_greedy_output_is_identical_with_and_without_the_draft_model(
        drafting_engine: EngineClient, gemma_runner: Any) -> None:
    model_accepted = 0
    for name, parts, documents in PROMPTS:
        plain, plain_done = _reply(drafting_engine, parts, {**GREEDY, "speculative": False})
        drafted, done = _reply(drafting_engine, parts, {**GREEDY, "speculative": True,
                                                        "documents": documents})
        assert_same_replies(gemma_runner, parts, plain_done, done)
        assert done["spec_draft_model"] == "gemma-3-270m-q4_k_m.gguf"
        sources = done["spec_source"]
        assert set(sources) == {"lookup", "draft_model"}
        assert done["spec_accepted"] == sum(s["accepted"] for s in sources.values())
        assert done["spec_acceptance"] > 0, (name, done)
        model_accepted += sources["draft_model"]["accepted"]
    # The same model drafting for itself: what it drafts, the target accepts.
    assert model_accepted > 0


def test_a_draft_model_with_another_vocabulary_is_refused_and_the_model_still_answers(
        drafting_engine: EngineClient, gemma_path: Path, smollm_path: Path) -> None:
    loaded = drafting_engine.load(LoadOptions(str(gemma_path), n_ctx=2048,
                                              draft_path=str(smollm_path)))["info"]
    assert loaded["draft_model"] is None
    note = loaded["draft_note"]
    assert note.startswith(f"{smollm_path.name} cannot draft for {gemma_path.name}: their "
                           "vocabularies differ"), note
    assert note.count(". ") == 0 and note.endswith("without a draft model.")  # one sentence
    text, done = _reply(drafting_engine, PROMPTS[1][1], {**GREEDY, "speculative": True})
    assert text and done["completion_tokens"] > 0
    assert "spec_draft_model" not in done and set(done["spec_source"]) == {"lookup"}
