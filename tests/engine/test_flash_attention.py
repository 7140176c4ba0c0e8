"""A load's flash attention mode (LoadOptions.flash_attn) reaches llama.cpp: the real worker
loads the real model with it, llama.cpp's own context log says which type it got, and the
model answers with each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from desktop.bench import chat_format
from desktop.core.chat.templates import render_parts
from desktop.core.engine.client import EngineClient, LoadOptions, flash_mode

# llama_context prints the type it was given: "llama_context: flash_attn = disabled".
TYPES = {"auto": "auto", "on": "enabled", "off": "disabled"}


@pytest.mark.parametrize("mode", ["off", "on", "auto"])
def test_the_worker_loads_with_the_flash_attention_asked_for(
        tmp_path: Path, smollm_path: Path, mode: str) -> None:
    client = EngineClient(tmp_path / "engine.log")
    try:
        loaded = client.load(LoadOptions(str(smollm_path), n_ctx=1024, flash_attn=mode))["info"]
        assert loaded["flash_attn"] == mode
        fmt = chat_format(str(smollm_path))  # its own ChatML template
        parts = render_parts(fmt, [{"role": "user", "content": "Name a colour."}])
        text = "".join(client.generate(parts, {"temperature": 0, "max_tokens": 8,
                                               "stop": fmt.stop}))
        assert text.strip()
    finally:
        client.shutdown()
    log = (tmp_path / "engine.log").read_text(encoding="utf-8", errors="replace")
    said = re.findall(r"llama_context: flash_attn\s+=\s+(\w+)", log)
    assert said == [TYPES[mode]], said


def test_a_models_setting_is_read_safely() -> None:
    assert flash_mode({}) == "auto"
    assert flash_mode({"flash_attn": "off"}) == "off"
    assert flash_mode({"flash_attn": "on"}) == "on"
    assert flash_mode({"flash_attn": True}) == "auto"  # a hand-edited file: not ours
    assert flash_mode({"flash_attn": "fast"}) == "auto"
