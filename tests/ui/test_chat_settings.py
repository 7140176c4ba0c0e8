"""Chat settings from the window: the real dialog, driven, saves to the chat."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from desktop.core.context import AppContext
from desktop.ui.chat_settings import ChatSettingsDialog
from tests.ui.test_models_window import accessible_name, controls
from tests.ui.window_fixtures import open_window, prepare

__all__ = ["open_window"]


def test_chat_settings_dialog_saves_to_the_open_chat(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    ctx = AppContext(data_dir)
    chat = ctx.chats.create_conversation("Poems")
    ctx.chats.add_message(chat.id, "user", "A haiku, please.")
    ctx.close()
    window = open_window(data_dir)
    window.open_conversation(chat.id)
    seen: list[list[str]] = []

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ChatSettingsDialog):
            QTimer.singleShot(10, fill)
            return
        seen.append([accessible_name(w) for w in controls(dialog)])
        dialog.system_prompt.setPlainText("Answer in verse.")
        dialog.inputs["temperature"].setValue(0.35)
        dialog.inputs["seed"].setValue(7)
        dialog.accept()

    QTimer.singleShot(0, fill)
    window.settings_button.click()
    saved = window.ctx.chats.conversation(chat.id)
    assert saved.system_prompt == "Answer in verse."
    assert saved.settings["temperature"] == 0.35 and saved.settings["seed"] == 7
    assert seen and all(name.strip() for name in seen[0])  # every field has a name
    # The app-wide defaults did not change (the box "for new chats too" was not ticked).
    assert window.ctx.settings.get("system_prompt", "") == ""
