"""Coming back to a long chat after a restart reads only the new message (issue 12, part 3).

The worker saves the active chat's KV state when it shuts down, after a reply in a long chat
(before it reports the reply done, so even a kill right after keeps it) and when it idles;
states stay within a disk budget, least recently used first out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.engine import kv_states
from desktop.engine_worker.state_cache import StateCache

REPO = Path(__file__).resolve().parent.parent.parent

# ~1,300 Gemma tokens: past the worker's "long chat" mark (1,024) after one turn.
LONG = " ".join(f"Note {i}: the lighthouse keeper logged wind, tide and {i % 7} passing ships."
                for i in range(90))


def _service(data_dir: Path, gemma_path: Path) -> tuple[AppContext, ChatService]:
    ctx = AppContext(data_dir)
    ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                       "max_tokens": 6}
    service = ChatService(ctx)
    service.load_model(gemma_path, n_ctx=2048)
    return ctx, service


def test_a_chat_resumes_from_its_state_after_a_clean_restart(data_dir: Path,
                                                             gemma_path: Path) -> None:
    ctx, service = _service(data_dir, gemma_path)
    conversation = service.new_conversation()
    first = service.send(conversation.id, "Summarise these notes. " + LONG[:2500])
    assert 256 <= first.prompt_tokens < 1024  # short of the long-chat mark: saved on shutdown
    assert not kv_states.usage(data_dir).files
    ctx.close()
    assert kv_states.usage(data_dir).files == 1

    ctx, service = _service(data_dir, gemma_path)
    try:
        again = service.send(conversation.id, "And in one word?")
        assert again.cached_tokens >= first.prompt_tokens + first.completion_tokens - 1
        assert again.prompt_tokens - again.cached_tokens < 20
    finally:
        ctx.close()


def test_a_long_chat_survives_a_kill_right_after_its_reply(data_dir: Path,
                                                           gemma_path: Path) -> None:
    ctx, service = _service(data_dir, gemma_path)
    conversation = service.new_conversation()
    first = service.send(conversation.id, "Summarise these notes. " + LONG)
    assert first.prompt_tokens >= 1024
    ctx.engine.process.send_signal(signal.SIGKILL)  # no shutdown, no idle: saved with the reply
    ctx.engine.process.wait()
    ctx.db.close()

    ctx, service = _service(data_dir, gemma_path)
    try:
        again = service.send(conversation.id, "And in one word?")
        assert again.prompt_tokens - again.cached_tokens < 20
    finally:
        ctx.close()


def test_the_cli_keeps_the_state_between_runs(data_dir: Path, gemma_path: Path) -> None:
    def chat(*args: str) -> dict:
        result = subprocess.run(
            [sys.executable, "main.py", "--data-dir", str(data_dir), "chat", "--model",
             str(gemma_path), "--temperature", "0", "--max-tokens", "4", "--ctx", "2048",
             "--json", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return json.loads(result.stdout)

    first = chat("--new", "Summarise these notes. " + LONG[:2500])
    again = chat("--continue", "And in one word?")
    assert again["cached_tokens"] >= first["prompt_tokens"]
    assert again["prompt_tokens"] - again["cached_tokens"] < 20


def test_an_idle_worker_saves_the_active_chat(data_dir: Path, gemma_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_IDLE_SAVE_S", "0.2")
    ctx, service = _service(data_dir, gemma_path)
    try:
        conversation = service.new_conversation()
        service.send(conversation.id, "Summarise these notes. " + LONG[:2500])
        pause = threading.Event()
        while not kv_states.usage(data_dir).files:  # the event: the worker wrote the state
            assert ctx.engine.process.poll() is None
            pause.wait(0.05)
    finally:
        ctx.close()


def test_states_stay_within_the_disk_budget_least_recently_used_first(tmp_path: Path) -> None:
    cache = StateCache("m", 100, budget_bytes=1 << 30, directory=tmp_path,
                       disk_budget_bytes=2500)
    for session in ("1", "2", "3"):
        cache.put(session, [1, 2, 3], b"x" * 1000)
    names = sorted(p.name for p in tmp_path.glob("*/*.kvstate"))
    assert names == ["2.kvstate", "3.kvstate"]  # the oldest went
    os.utime(tmp_path / "m" / "3.kvstate", (1, 1))  # 3 is now the least recently used...
    cache.ram.clear()
    assert cache.get("2") is not None  # ...and reading 2 touches it
    cache.put("4", [1], b"y" * 1000)
    assert sorted(p.name for p in tmp_path.glob("*/*.kvstate")) == ["2.kvstate", "4.kvstate"]


def test_clearing_states_frees_the_room(data_dir: Path) -> None:
    folder = kv_states.states_dir(data_dir) / "model"
    folder.mkdir(parents=True)
    (folder / "7.kvstate").write_bytes(b"z" * 2048)
    assert kv_states.usage(data_dir).files == 1
    assert kv_states.clear(data_dir).bytes == 2048
    assert kv_states.usage(data_dir).describe() == "No saved chat states."
