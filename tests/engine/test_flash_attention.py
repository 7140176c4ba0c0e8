"""A load's flash attention mode (LoadOptions.flash_attn) reaches llama.cpp: the real worker
loads the real model with it, llama.cpp's own context log says which type it got, and the
model answers with each. "auto" on a CPU is llama.cpp's own auto for Gemma 3's 256-wide heads
(decode_loop.effective_flash); for SmolLM2's 64-wide ones it is measured on the machine
(test_flash_choice.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from desktop.bench import chat_format
from desktop.core.chat.templates import render_parts
from desktop.core.engine.client import EngineClient, LoadOptions, flash_mode
from desktop.engine_worker.decode_loop import effective_flash, narrow_on_cpu

# llama_context prints the type it was given: "llama_context: flash_attn = disabled".
TYPES = {"auto": "auto", "on": "enabled", "off": "disabled"}


@pytest.mark.parametrize(("model", "mode", "used"), [
    ("smollm", "off", "off"), ("smollm", "on", "on"),
    ("gemma", "auto", "auto"), ("gemma", "off", "off")])
def test_the_worker_loads_with_the_flash_attention_asked_for(
        tmp_path: Path, request: pytest.FixtureRequest, model: str, mode: str,
        used: str) -> None:
    path = request.getfixturevalue(f"{model}_path")
    client = EngineClient(tmp_path / "engine.log")
    try:
        loaded = client.load(LoadOptions(str(path), n_ctx=1024, flash_attn=mode))["info"]
        assert loaded["flash_attn"] == mode and loaded["flash_attn_used"] == used
        fmt = chat_format(str(path))  # SmolLM2's own ChatML template, Gemma's built-in one
        parts = render_parts(fmt, [{"role": "user", "content": "Name a colour."}])
        done = client.generate(parts, {"temperature": 0, "max_tokens": 8, "stop": fmt.stop,
                                       "ignore_eos": True}).wait()
        assert done["completion_tokens"] == 8
    finally:
        client.shutdown()
    log = (tmp_path / "engine.log").read_text(encoding="utf-8", errors="replace")
    said = re.findall(r"llama_context: flash_attn\s+=\s+(\w+)", log)
    assert said == [TYPES[used]], said


def test_auto_is_off_only_for_narrow_heads_with_the_kv_cache_on_the_cpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixed rule, which stands until a verdict is measured (or where none can be)."""
    monkeypatch.delenv("HEARTH_FLASH_ATTN", raising=False)
    assert narrow_on_cpu("auto", 64, kv_on_cpu=True)
    assert not narrow_on_cpu("auto", 128, kv_on_cpu=True)
    assert not narrow_on_cpu("on", 64, kv_on_cpu=True)
    assert not narrow_on_cpu("auto", 64, kv_on_cpu=False)
    assert effective_flash("auto", 64, kv_on_cpu=True) == "off"
    assert effective_flash("auto", 128, kv_on_cpu=True) == "auto"
    assert effective_flash("auto", 64, kv_on_cpu=False) == "auto"
    assert effective_flash("auto", 0, kv_on_cpu=True) == "auto"  # a header without sizes
    assert effective_flash("on", 64, kv_on_cpu=True) == "on"  # the user's choice stands


def test_a_models_setting_is_read_safely() -> None:
    assert flash_mode({}) == "auto"
    assert flash_mode({"flash_attn": "off"}) == "off"
    assert flash_mode({"flash_attn": "on"}) == "on"
    assert flash_mode({"flash_attn": True}) == "auto"  # a hand-edited file: not ours
    assert flash_mode({"flash_attn": "fast"}) == "auto"
