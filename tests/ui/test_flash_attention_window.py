"""A model's own Flash attention choice, in the real window offscreen with the real model:
saved per model, the loaded model reloads with it at once (llama.cpp's log says which type
its context got), and Automatic leaves nothing of the model's own behind."""

from __future__ import annotations

import re
from pathlib import Path

from desktop.ui.chat_settings import ChatSettingsDialog
from tests.ui.window_fixtures import (  # noqa: F401 - open_window is the fixture
    edit_model_defaults,
    open_window,
    prepare,
    select_installed,
)

TYPES = {"on": "enabled", "off": "disabled"}  # as llama_context's log names them


def _contexts(window) -> list[str]:  # noqa: ANN001
    """The flash attention type of every context llama.cpp created so far, in order."""
    log = window.ctx.engine.log_path.read_text(encoding="utf-8", errors="replace")
    return re.findall(r"llama_context: flash_attn\s+=\s+(\w+)", log)


def _set(dialog: ChatSettingsDialog, mode: str) -> None:
    assert dialog.flash_attn is not None
    dialog.flash_attn.setCurrentIndex(dialog.flash_attn.findData(mode))


def test_a_models_flash_attention_choice_reloads_it_and_is_kept(
        qtbot, open_window, data_dir: Path, smollm_path: Path) -> None:  # noqa: ANN001, F811
    prepare(data_dir, smollm_path, max_tokens=8)
    window = open_window(data_dir)
    window.send("Name a colour.")  # loads the model and answers
    qtbot.waitUntil(lambda: window.generating, timeout=120_000)
    qtbot.waitUntil(lambda: not window.generating, timeout=180_000)
    assert not window.error_box.isVisible(), window.error_label.text()
    # Automatic, on a CPU, for SmolLM2's 64-wide heads: both kernels timed on this machine
    # once (engine_worker/flash_choice.py), and the model loaded with the quicker.
    loaded = window.service.model.loaded
    assert loaded["flash_attn"] == "auto" and loaded["flash_choice"]["source"] == "measured"
    automatic = loaded["flash_attn_used"]
    assert _contexts(window)[-1] == TYPES[automatic]

    installed = select_installed(window, smollm_path)
    shown: list[str] = []
    edit_model_defaults(installed, lambda d: (shown.append(d.flash_attn.currentData()),
                                              _set(d, "on")))
    assert shown == ["auto"]
    assert window.ctx.library.find(smollm_path).settings == {"flash_attn": "on"}
    # At once: the loaded model reloads with it, and says so.
    qtbot.waitUntil(lambda: window.service.model.loaded.get("flash_attn") == "on"
                    and not window.model_control.loading, timeout=120_000)
    assert _contexts(window)[-1] == "enabled"
    assert "flash attention on" in window.model_status.full_text()

    # Shown again as saved; back to Automatic: nothing of the model's own is left.
    edit_model_defaults(installed, lambda d: (shown.append(d.flash_attn.currentData()),
                                              _set(d, "auto")))
    assert shown[-1] == "on"
    assert window.ctx.library.find(smollm_path).settings == {}
    qtbot.waitUntil(lambda: window.service.model.loaded.get("flash_attn") == "auto"
                    and not window.model_control.loading, timeout=120_000)
    # The verdict was kept in the data folder: Automatic again, nothing measured again.
    loaded = window.service.model.loaded
    assert loaded["flash_choice"] == {"source": "saved"}
    assert loaded["flash_attn_used"] == automatic and _contexts(window)[-1] == TYPES[automatic]
