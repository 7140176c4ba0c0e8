"""Per-conversation KV states: a hit when returning to a chat, never across models, and a
damaged state file is refused before llama.cpp sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.core.chat.templates import choose_format, render_parts
from desktop.core.engine.client import EngineClient, LoadOptions

GEMMA = choose_format("gemma3", {"<start_of_turn>": 105}, None)
HISTORY = "The keeper logged the weather, the ships and the colour of the sea. " * 30  # ~500 tok


def _ask(client: EngineClient, session: str, history: list[dict], question: str) -> dict:
    history.append({"role": "user", "content": question})
    generation = client.generate(render_parts(GEMMA, history),
                                 {"temperature": 0, "max_tokens": 4, "stop": GEMMA.stop,
                                  "session": session})
    history.append({"role": "assistant", "content": "".join(generation)})
    return generation.result


@pytest.fixture
def states_dir(tmp_path: Path) -> Path:
    return tmp_path / "kv-states"


def _client(tmp_path: Path, model: Path, states_dir: Path) -> EngineClient:
    client = EngineClient(tmp_path / f"{model.stem}.log")
    client.load(LoadOptions(str(model), n_ctx=4096, state_dir=str(states_dir)))
    return client


def test_returning_to_a_chat_restores_its_kv_state(tmp_path: Path, gemma_path: Path,
                                                   states_dir: Path) -> None:
    client = _client(tmp_path, gemma_path, states_dir)
    try:
        a: list[dict] = []
        b: list[dict] = []
        first = _ask(client, "1", a, "A: " + HISTORY)
        _ask(client, "2", b, "B: " + HISTORY)  # the KV cache now holds chat 2
        back = _ask(client, "1", a, "And the door?")
        assert back["state_restored"] is True
        assert back["cached_tokens"] >= first["prompt_tokens"]
        assert back["prompt_tokens"] - back["cached_tokens"] < 20
        assert any(states_dir.glob("*/1.kvstate")) and any(states_dir.glob("*/2.kvstate"))
    finally:
        client.shutdown()

    # A fresh worker (app restart) finds chat 1's state on disk.
    again = _client(tmp_path, gemma_path, states_dir)
    try:
        result = _ask(again, "2", b, "Anything else?")
        assert result["state_restored"] is True and result["cached_tokens"] > 400
    finally:
        again.shutdown()


def _saved_chat(tmp_path: Path, model: Path, states_dir: Path, session: str) -> list[dict]:
    """A long chat whose KV state was written to disk (another chat took the cache after it),
    in a worker that has since stopped."""
    client = _client(tmp_path, model, states_dir)
    chat: list[dict] = []
    try:
        _ask(client, session, chat, HISTORY)
        _ask(client, session + "-other", [], HISTORY + " other")
    finally:
        client.shutdown()
    return chat


def test_states_never_cross_models(tmp_path: Path, gemma_path: Path, states_dir: Path) -> None:
    chat = _saved_chat(tmp_path, gemma_path, states_dir, "7")
    # Same weights, different file content (one metadata byte): a different model as far as
    # saved states are concerned.
    data = bytearray(gemma_path.read_bytes())
    at = data.find(b"Gemma 3 270m")
    data[at:at + 12] = b"Gemmb 3 270m"
    other = tmp_path / "other.gguf"
    other.write_bytes(bytes(data))
    client = _client(tmp_path, other, states_dir)
    try:
        result = _ask(client, "7", chat, "Continue.")
        assert result["state_restored"] is False
    finally:
        client.shutdown()


def test_damaged_state_file_is_refused(tmp_path: Path, gemma_path: Path,
                                       states_dir: Path) -> None:
    chat = _saved_chat(tmp_path, gemma_path, states_dir, "5")
    state = next(states_dir.glob("*/5.kvstate"))
    blob = bytearray(state.read_bytes())
    blob[-100] ^= 0xFF
    state.write_bytes(bytes(blob))
    client = _client(tmp_path, gemma_path, states_dir)
    try:
        result = _ask(client, "5", chat, "Continue.")
        assert result["state_restored"] is False and result["completion_tokens"] > 0
        assert not state.exists()  # the damaged file was discarded
        assert "discarding KV state 5.kvstate" in client.log_tail(200)
    finally:
        client.shutdown()
