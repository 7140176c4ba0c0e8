"""The real worker process with the real model: streaming, cache reuse, cancel, crash, errors."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import EngineCrashed, EngineError, ModelFileError

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)
GREEDY = {"temperature": 0, "stop": GEMMA.stop}


def _parts(*turns: str) -> list[dict]:
    roles = ["user", "assistant"]
    return render_parts(GEMMA, [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)])


def test_generate_streams_and_reports_stats(engine: EngineClient) -> None:
    generation = engine.generate(_parts("Tell me about the sea."), {**GREEDY, "max_tokens": 24})
    pieces = list(generation)
    result = generation.result
    assert len(pieces) >= 2, "text should arrive in several streamed pieces"
    assert "".join(pieces).strip()
    for key in ("prompt_tokens", "cached_tokens", "completion_tokens", "ttft_s", "tokens_per_s"):
        assert key in result
    assert result["completion_tokens"] == 24 and result["stop_reason"] == "length"
    assert result["ttft_s"] > 0 and result["tokens_per_s"] > 0


def test_follow_up_reuses_the_kv_cache(engine: EngineClient) -> None:
    first = engine.generate(_parts("Name three colours."), {**GREEDY, "max_tokens": 20})
    reply = "".join(first)
    turn1 = first.result
    second = engine.generate(_parts("Name three colours.", reply, "And three animals?"),
                             {**GREEDY, "max_tokens": 8})
    second.wait()
    turn2 = second.result
    # Everything of turn 1 (prompt + the generated reply's exact tokens) came from the cache.
    assert turn2["cached_tokens"] >= turn1["prompt_tokens"] + turn1["completion_tokens"] - 1
    assert turn2["prompt_tokens"] - turn2["cached_tokens"] < 20


def test_same_seed_same_reply(engine: EngineClient) -> None:
    params = {"temperature": 0.9, "seed": 42, "max_tokens": 16, "stop": GEMMA.stop}
    a = "".join(engine.generate(_parts("Write a word."), params))
    b = "".join(engine.generate(_parts("Write a word."), params))
    assert a == b


def test_a_cancel_that_overtakes_its_generate_still_stops_it(engine: EngineClient) -> None:
    # The second request waits in the worker's queue behind the first; its cancel arrives
    # before it starts (the window's Stop while a reply waits behind an API request).
    first = engine.generate(_parts("Count to one thousand."), {**GREEDY, "max_tokens": 64})
    waiting = engine.generate(_parts("Count to one thousand."),
                              {**GREEDY, "max_tokens": 2000})
    waiting.cancel()
    "".join(first)
    "".join(waiting)
    assert first.result["stop_reason"] != "cancelled"
    assert waiting.result["stop_reason"] == "cancelled"
    assert waiting.result["completion_tokens"] < 2000


def test_cancel_stops_the_reply(engine: EngineClient) -> None:
    # Stopping is checked between tokens: the reply ends as "cancelled", long before its
    # length limit, whatever the machine's speed (how fast is for `bench`, not a test).
    generation = engine.generate(_parts("Count to one thousand."),
                                 {**GREEDY, "max_tokens": 2000})
    stream = iter(generation)
    next(stream)
    generation.cancel()
    for _ in stream:
        pass
    assert generation.result["stop_reason"] == "cancelled"
    assert not generation.result.get("killed")  # the worker obeyed; it was not killed
    assert generation.result["completion_tokens"] < 2000
    # The worker is still healthy afterwards.
    assert "".join(engine.generate(_parts("Hi"), {**GREEDY, "max_tokens": 4}))


def test_count_tokens(engine: EngineClient) -> None:
    short, long = engine.count_tokens(["hello", "hello " * 50])
    assert 1 <= short < long


def test_bad_model_file_is_an_error_not_a_crash(tmp_path: Path, engine: EngineClient) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"\x00" * 4096)
    log = tmp_path / "w.log"
    client = EngineClient(log)
    try:
        with pytest.raises(ModelFileError, match="bogus.gguf is not a GGUF model"):
            client.load(LoadOptions(str(bogus)))
        assert client.alive  # the worker refused the file and lives on
    finally:
        client.shutdown()


def test_generate_without_model_is_a_clear_error(tmp_path: Path) -> None:
    client = EngineClient(tmp_path / "w.log")
    with pytest.raises(EngineError, match="No model is loaded"):
        client.generate(_parts("hi"), GREEDY)


def test_killed_worker_becomes_a_clear_error_and_restarts(tmp_path: Path,
                                                          gemma_path: Path) -> None:
    client = EngineClient(tmp_path / "engine.log")
    try:
        client.load(LoadOptions(str(gemma_path), n_ctx=2048))
        generation = client.generate(_parts("Tell a long story."), {**GREEDY, "max_tokens": 2000})
        received = []
        with pytest.raises(EngineCrashed) as err:
            for piece in generation:
                received.append(piece)
                if len(received) == 3:
                    os.kill(client.process.pid, signal.SIGKILL)
        assert err.value.message == "The model stopped unexpectedly."
        assert "killed by signal 9" in err.value.details
        assert "[worker] generate" in err.value.details  # the tail of the worker's log
        assert len(generation.text) >= 3  # the partial reply is still available
        # The next request starts a fresh worker and reloads the model on its own.
        again = client.generate(_parts("Hi"), {**GREEDY, "max_tokens": 4})
        assert "".join(again)
        assert client.loaded is not None
    finally:
        client.shutdown()


def test_embeddings_from_the_real_embedding_model(tmp_path: Path, embed_model_path: Path) -> None:
    import numpy as np

    client = EngineClient(tmp_path / "embed.log")
    try:
        loaded = client.load(LoadOptions(str(embed_model_path), n_ctx=512, embedding=True))
        assert loaded["info"]["embedding"] is True
        long_text = "Plants turn light into chemical energy. " * 40  # > n_batch would truncate
        vectors = np.array(client.embed([
            "How do plants get energy from sunlight?",
            "Photosynthesis converts light energy into chemical energy in plants.",
            "The stock market fell sharply on Tuesday.",
            long_text,
        ]))
        assert vectors.shape == (4, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
        related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
        assert related > 0.5 > unrelated
    finally:
        client.shutdown()
