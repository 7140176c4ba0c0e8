"""The first run, and files dropped on a chat, in the real window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from desktop.core.chat.conversations import recommend_first_model
from desktop.ui.bridge import app_signals
from tests.fake_hub import FakeHub
from tests.gguf_files import write_small_gguf
from tests.ui.window_fixtures import open_window, prepare

__all__ = ["open_window"]


def test_first_run_offers_the_recommended_model_without_a_flash(
        qtbot, open_window, data_dir: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    window = open_window(data_dir)
    # Before the library has been read (off the GUI thread) nothing claims "no model".
    assert window.stack.currentWidget() is window.start_panel
    assert not window.start_panel.card.isVisible()
    assert "no model" not in window.model_status.full_text().lower()
    qtbot.waitUntil(lambda: window.start_panel.view is not None, timeout=30_000)
    panel = window.start_panel
    assert panel.card.isVisible() and panel.first_run
    expected = recommend_first_model(window.ctx).recommended
    assert expected is not None, "this machine has memory for at least the 1B model"
    assert panel.download_button.isVisible()
    assert expected.name in panel.download_button.text()
    assert expected.name in panel.recommendation.text()
    assert panel.fit.text()  # how it fits this machine, in words

    # One click queues it on the app's download queue (the one the Models window shows).
    hub = FakeHub()
    hub.add_file(expected.repo, expected.file, write_small_gguf(tmp_path / "not-it.gguf"))
    monkeypatch.setenv("HF_ENDPOINT", hub.start())
    try:
        qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
        jobs = window.ctx.downloads.jobs
        assert [(j.repo, j.model.name) for j in jobs] == [(expected.repo, expected.file)]
        assert panel.progress.isVisible()
        # The file served is not the one Hearth pinned: the panel says so, in words.
        qtbot.waitUntil(lambda: jobs[0].state.status == "failed", timeout=30_000)
        qtbot.waitUntil(lambda: panel.download_button.isEnabled(), timeout=10_000)
        assert panel.progress.text() and "Errno" not in panel.progress.text()
    finally:
        hub.stop()

    # A model arrives (downloaded, or added elsewhere): the panel becomes "start a chat".
    window.ctx.library.add(write_small_gguf(tmp_path / "chat.gguf"))
    app_signals(window.ctx).library_changed.emit()
    assert not panel.first_run
    assert panel.title.text() == "Start a conversation"
    assert not panel.download_button.isVisible()


def test_with_a_model_the_start_page_says_start(qtbot, open_window, data_dir: Path,
                                                gemma_path: Path) -> None:  # noqa: ANN001
    prepare(data_dir, gemma_path)
    window = open_window(data_dir)
    qtbot.waitUntil(lambda: window.start_panel.view is not None, timeout=30_000)
    assert window.start_panel.title.text() == "Start a conversation"
    assert "no model" not in window.model_status.full_text().lower()


def _mime(paths: list[Path]) -> QMimeData:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return data


def test_a_drop_shows_a_highlight_and_file_chips(qtbot, open_window, data_dir: Path,
                                                 tmp_path: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    window = open_window(data_dir, (900, 650))
    note = tmp_path / "meeting notes.md"
    note.write_text("# Minutes\n\nThe budget for the garden is 400 euros.\n")
    missing = tmp_path / "gone.txt"
    data = _mime([note, missing])
    at = window.stack.geometry().center()
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    assert window.drop_highlight.isVisible()
    assert window.drop_highlight.geometry() == window.stack.rect()
    QApplication.sendEvent(window, QDragLeaveEvent())
    assert not window.drop_highlight.isVisible()

    QApplication.sendEvent(window, QDragEnterEvent(at, Qt.DropAction.CopyAction, data,
                                                   Qt.MouseButton.LeftButton,
                                                   Qt.KeyboardModifier.NoModifier))
    drop = QDropEvent(QPoint(at), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert not window.drop_highlight.isVisible()
    chips = window.file_chips.chips
    assert [c.name for c in chips] == ["meeting notes.md", "gone.txt"]
    assert all(c.isVisible() for c in chips)
    assert "meeting notes.md" in chips[0].text() and "reading" in chips[0].text()
    qtbot.waitUntil(lambda: all(c.state != "reading…" for c in chips), timeout=60_000)
    assert chips[0].state == "ready"
    assert chips[1].state.startswith("not read")
    assert window.current_id is not None
    assert "files dropped here" in window.sources_button.text()
    # Another chat: its own (no) chips.
    window.new_chat()
    assert window.file_chips.chips == []
    assert not chips[0].isVisible()
