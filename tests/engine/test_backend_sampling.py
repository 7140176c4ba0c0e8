"""Sampling inside llama.cpp's graph (engine_worker/backend_sampling.py), on the real model.

Hearth uses it where the output layer runs on a GPU; HEARTH_BACKEND_SAMPLING=on forces it on
the CPU so that this machine exercises the same code: same tokens as the CPU chain (drafting
on and off), seeded replies repeat, and switching settings between replies (attach, reset,
swap, detach for a JSON-schema reply) keeps every reply right.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient, LoadOptions

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)
GREEDY = {"temperature": 0, "stop": GEMMA.stop, "max_tokens": 32}
PROMPTS = ["Tell me a story about a lighthouse.", "List five fruits and their colours."]


def _parts(text: str) -> list[dict]:
    return render_parts(GEMMA, [{"role": "user", "content": text}])


def _engine(tmp_path: Path, gemma_path: Path, mode: str) -> EngineClient:
    client = EngineClient(tmp_path / f"engine-{mode}.log",
                          env={**os.environ, "HEARTH_BACKEND_SAMPLING": mode})
    client.load(LoadOptions(str(gemma_path), n_ctx=1024))
    return client


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory,
            gemma_path: Path) -> Iterator[tuple[EngineClient, EngineClient]]:
    tmp = tmp_path_factory.mktemp("backend-sampling")
    cpu = _engine(tmp, gemma_path, "off")
    graph = _engine(tmp, gemma_path, "on")
    try:
        yield cpu, graph
    finally:
        cpu.shutdown()
        graph.shutdown()


@pytest.mark.parametrize("speculative", [False, True])
def test_greedy_tokens_are_the_cpu_chains(engines: tuple[EngineClient, EngineClient],
                                          speculative: bool) -> None:
    cpu, graph = engines
    for prompt in PROMPTS:
        params = {**GREEDY, "speculative": speculative}
        expected = "".join(cpu.generate(_parts(prompt), params))
        got = graph.generate(_parts(prompt), params)
        assert "".join(got) == expected
        assert got.result is not None and got.result["completion_tokens"] > 0


def test_settings_change_between_replies(engines: tuple[EngineClient, EngineClient]) -> None:
    _, graph = engines
    sampled = {"temperature": 0.9, "seed": 42, "max_tokens": 16, "stop": GEMMA.stop}
    greedy_first = "".join(graph.generate(_parts(PROMPTS[0]), GREEDY))
    # The same seeded settings twice: the attached chain is reset, not rebuilt, in between.
    a = "".join(graph.generate(_parts("Write a word."), sampled))
    b = "".join(graph.generate(_parts("Write a word."), sampled))
    assert a == b
    # A JSON-schema reply runs on the CPU chain (llama.cpp's grammar is CPU-only).
    schema = {"type": "object", "properties": {"name": {"type": "string"}},
              "required": ["name"]}
    structured = "".join(graph.generate(_parts("Give a name as JSON."), {
        **GREEDY, "max_tokens": 48, "json_schema": schema}))
    assert isinstance(json.loads(structured)["name"], str)
    # Back to greedy after both swaps: the same reply as the first time.
    assert "".join(graph.generate(_parts(PROMPTS[0]), GREEDY)) == greedy_first
