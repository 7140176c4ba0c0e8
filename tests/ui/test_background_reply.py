"""With the real model: other chats can be read while a reply is written; errors leave when
their cause does; model defaults changed while a model is loaded apply at once."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from desktop.core.context import AppContext
from desktop.ui.bridge import app_signals
from tests.ui.window_fixtures import open_window, prepare

__all__ = ["open_window"]


def test_other_chats_can_be_read_while_a_reply_streams(qtbot, open_window, data_dir: Path,
                                                        gemma_path: Path) -> None:  # noqa: ANN001
    prepare(data_dir, gemma_path, max_tokens=3000)
    ctx = AppContext(data_dir)
    other = ctx.chats.create_conversation("Older chat")
    ctx.chats.add_message(other.id, "user", "What is a heron?")
    ctx.chats.add_message(other.id, "assistant", "A long-legged wading bird.")
    ctx.close()
    window = open_window(data_dir)
    pieces: list[str] = []
    window.text_arrived.connect(pieces.append)
    window.new_chat()
    window.send("Write a long story about a lighthouse.")
    busy = window.current_id
    qtbot.waitUntil(lambda: len(pieces) >= 3, timeout=60_000)

    # Click the other chat in the sidebar: it opens, the reply goes on.
    sidebar = window.sidebar
    sidebar.view.setCurrentIndex(sidebar.model.index(sidebar.model.row_of(other.id)))
    assert window.current_id == other.id
    assert [w.message.content for w in window.chat_view.widgets] == [
        "What is a heron?", "A long-legged wading bird."]
    assert sidebar.view.currentIndex().data(Qt.ItemDataRole.UserRole) == other.id
    # The sidebar shows which chat is busy.
    busy_index = sidebar.model.index(sidebar.model.row_of(busy))
    assert busy_index.data(Qt.ItemDataRole.DecorationRole) is not None
    assert "writing" in busy_index.data(Qt.ItemDataRole.AccessibleTextRole)
    # Sending here is refused in words, and the error goes when the reply is done.
    window.send("And a stork?")
    assert window.error_box.isVisible() and "another chat" in window.error_label.full_text()
    seen = len(pieces)
    qtbot.waitUntil(lambda: len(pieces) > seen + 3, timeout=60_000)

    # Back on the busy chat: the live reply, still streaming.
    sidebar.view.setCurrentIndex(sidebar.model.index(sidebar.model.row_of(busy)))
    assert window.current_id == busy
    live = window.chat_view.widgets[-1]
    assert live.message.role == "assistant"
    so_far = "".join(pieces)
    qtbot.waitUntil(lambda: window.chat_view.streaming_text.startswith(so_far[:50])
                    and len(window.chat_view.streaming_text) >= len(so_far), timeout=30_000)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.generating, timeout=60_000)
    assert not window.error_box.isVisible(), "the 'still being written' error outlived its cause"
    reply = window.ctx.chats.messages(busy)[-1]
    assert reply.state == "stopped" and reply.content == "".join(pieces)
    assert window.chat_view.widgets[-1].message.content == reply.content
    busy_index = sidebar.model.index(sidebar.model.row_of(busy))
    assert busy_index.data(Qt.ItemDataRole.DecorationRole) is None
    # Nothing of the other chat changed.
    assert [m.content for m in window.ctx.chats.messages(other.id)] == [
        "What is a heron?", "A long-legged wading bird."]


def test_saved_model_defaults_reload_the_loaded_model(qtbot, open_window, data_dir: Path,
                                                      gemma_path: Path) -> None:  # noqa: ANN001
    prepare(data_dir, gemma_path, max_tokens=4)
    window = open_window(data_dir)
    window.load_model(str(gemma_path))
    qtbot.waitUntil(lambda: not window.loading and window.service.model is not None,
                    timeout=60_000)
    assert window.service.model.n_ctx == 4096
    assert "context 4096" in window.model_status.full_text()
    statuses: list[str] = []
    window.model_status.show_text = _recording(window.model_status.show_text, statuses)

    # The user saves "context 512" as this model's default in Models → Installed.
    window.open_models()
    installed = window.models_page.installed
    entry = window.ctx.library.find(str(gemma_path))
    installed.save_defaults(entry, "", {**window.ctx.app_defaults(), "n_ctx": 512})
    assert "reloads" in installed.status.full_text()
    assert any("Reloading" in s and "context 512" in s for s in statuses), statuses
    assert not window.send_button.isEnabled()
    window.send("hello")  # while it reloads: said, not lost
    assert "loading" in window.error_label.full_text()
    qtbot.waitUntil(lambda: not window.loading, timeout=60_000)
    # The load's progress was counted in the status line as it went.
    assert any(s.startswith("Reloading") and s.endswith("%") for s in statuses), statuses
    assert window.service.model.n_ctx == 512
    assert window.ctx.engine.loaded
    assert window.model_status.full_text().startswith("Reloaded with context 512.")
    assert "context 512" in window.model_status.full_text()
    assert not window.error_box.isVisible()
    assert window.send_button.isEnabled()
    # Nothing changed: nothing reloads.
    statuses.clear()
    app_signals(window.ctx).library_changed.emit()
    assert not window.loading and not any("Reloading" in s for s in statuses)
    # The app-wide context changes, but the model's own 512 wins: no reload either.
    window.ctx.settings.set("n_ctx", 2048)
    app_signals(window.ctx).settings_changed.emit()
    assert not window.loading
    # Without its own context, the model follows the app-wide one, at once.
    installed.save_defaults(entry, "", window.ctx.app_defaults())
    assert window.loading and "context 2048" in window.model_status.full_text()
    qtbot.waitUntil(lambda: not window.loading, timeout=60_000)
    assert window.service.model.n_ctx == 2048


def _recording(show_text, into: list[str]):  # noqa: ANN001, ANN202
    def record(text: str, tone: str | None = None) -> None:
        into.append(text)
        show_text(text, tone)

    return record
