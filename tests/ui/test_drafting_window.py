"""Speculative decoding in the real window, offscreen, with the real model: a reply's details
line shows what drafting did (and still does after a restart, read back from the SQLite
file); the Settings switch and a model's own defaults turn drafting off at once; the Draft
model choice is saved per model."""

from __future__ import annotations

from pathlib import Path

from desktop.core.settings import Settings
from desktop.core.store.chats import Message
from desktop.ui.chat_settings import ChatSettingsDialog
from desktop.ui.message_widget import DRAFTING_TIP
from desktop.ui.settings_dialog import SettingsDialog
from tests.ui.window_fixtures import (  # noqa: F401 - open_window is the fixture
    edit_model_defaults,
    open_window,
    prepare,
    select_installed,
)

FRUIT = ", ".join(["apple", "banana", "cherry", "date", "elderberry", "fig", "grape",
                   "honeydew"] * 3)
REPEAT = f"Repeat this list exactly: {FRUIT}"  # the reply repeats it: drafts find it there


def _reply(qtbot, window, text: str) -> Message:  # noqa: ANN001
    """Send `text` from the window and wait for the reply to finish; the reply as stored."""
    window.send(text)
    qtbot.waitUntil(lambda: window.generating, timeout=60_000)
    qtbot.waitUntil(lambda: not window.generating, timeout=180_000)
    assert not window.error_box.isVisible(), window.error_label.text()
    reply = window.ctx.chats.messages(window.current_id)[-1]
    assert reply.role == "assistant" and reply.state == "done"
    assert window.chat_view.widgets[-1].message.id == reply.id
    return reply


def _meta(window) -> str:  # noqa: ANN001
    # The drafting stats keep their words together with no-break spaces.
    return window.chat_view.widgets[-1].meta.text().replace("\u00a0", " ")


def test_drafting_stats_show_survive_a_restart_and_the_switch_turns_it_off(
        qtbot, open_window, data_dir: Path, gemma_path: Path) -> None:  # noqa: ANN001, F811
    prepare(data_dir, gemma_path, max_tokens=40)
    window = open_window(data_dir)
    reply = _reply(qtbot, window, REPEAT)
    spec = reply.spec
    assert spec["drafted"] > 0 and spec["accepted"] > 0, spec
    shown = f"drafts {spec['speedup']:.1f}x, {round(100 * spec['accepted'] / spec['drafted'])}% " \
            "accepted"
    assert shown in _meta(window)
    assert window.chat_view.widgets[-1].meta.toolTip() == DRAFTING_TIP
    chat = window.current_id
    window.close()
    window.ctx.close()

    # A restart: the stats come back from the database file.
    window = open_window(data_dir)
    assert window.current_id == chat
    assert window.chat_view.widgets[-1].message.spec == spec
    assert shown in _meta(window)

    # Settings → "Speculative decoding" off: saved, and the next reply drafts nothing.
    window.app_actions["settings"].trigger()
    qtbot.waitUntil(lambda: getattr(window, "_settings_dialog", None) is not None)
    dialog: SettingsDialog = window._settings_dialog
    assert dialog.speculative.isChecked()
    dialog.speculative.setChecked(False)
    dialog.save()
    assert Settings(data_dir / "settings.json").get("sampling")["speculative"] is False
    off = _reply(qtbot, window, REPEAT)
    # spec_json is stored whenever the done event says drafting ran (even with 0 drafts), so
    # None means the worker's done event said speculative False.
    assert off.spec_json is None
    assert "drafts" not in _meta(window) and "tok/s" in _meta(window)
    assert window.chat_view.widgets[-1].meta.toolTip() == ""


def test_a_models_own_defaults_turn_drafting_off_and_keep_the_draft_model_choice(
        qtbot, open_window, data_dir: Path, gemma_path: Path) -> None:  # noqa: ANN001, F811
    prepare(data_dir, gemma_path, max_tokens=40)
    window = open_window(data_dir)
    assert _reply(qtbot, window, REPEAT).spec["drafted"] > 0  # on by default

    installed = select_installed(window, gemma_path)
    seen: list[tuple[bool, str]] = []

    def turn_off(dialog: ChatSettingsDialog) -> None:
        assert dialog.speculative is not None and dialog.draft_model is not None
        seen.append((dialog.speculative.isChecked(), dialog.draft_model.currentData()))
        dialog.speculative.setChecked(False)
        dialog.draft_model.setCurrentIndex(dialog.draft_model.findData("off"))

    edit_model_defaults(installed, turn_off)
    assert seen == [(True, "auto")]
    assert window.ctx.library.find(gemma_path).settings == {"speculative": False,
                                                           "draft_model": "off"}
    # Shown again as saved.
    edit_model_defaults(installed, lambda d: seen.append((d.speculative.isChecked(),
                                                     d.draft_model.currentData())))
    assert seen[-1] == (False, "off")
    # At once: this model's next reply drafts nothing.
    off = _reply(qtbot, window, REPEAT)
    assert off.spec_json is None and "drafts" not in _meta(window)

    # Back to Automatic and on: nothing of the model's own is left (the app's defaults rule).
    def turn_on(dialog: ChatSettingsDialog) -> None:
        dialog.speculative.setChecked(True)
        dialog.draft_model.setCurrentIndex(dialog.draft_model.findData("auto"))

    edit_model_defaults(installed, turn_on)
    assert window.ctx.library.find(gemma_path).settings == {}


def test_the_model_status_names_the_draft_model(
        qtbot, open_window, data_dir: Path, gemma_path: Path) -> None:  # noqa: ANN001, F811
    # A draft model chosen by path (any same-vocabulary file; here the model itself) loads
    # beside it, and the window says which model drafts.
    prepare(data_dir, gemma_path, max_tokens=8, draft_model=str(gemma_path))
    window = open_window(data_dir)
    _reply(qtbot, window, "Hello")
    # The line is elided to the window's width; its tooltip holds it whole.
    qtbot.waitUntil(lambda: f"Drafts with {gemma_path.name}." in window.model_status.toolTip(),
                    timeout=60_000)
