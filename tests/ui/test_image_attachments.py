"""Images in the real window, offscreen: the composer takes them by button, paste and drop,
shows thumbnails, sends them to the real Gemma 3 270M model with the tiny projector of
tests/vision_files.py, and the sent message keeps them (also after the window is reopened)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog

from desktop.core.context import AppContext
from desktop.ui.image_attachments import ThumbStrip
from tests.ui.window_fixtures import open_window, prepare  # noqa: F401 - pytest fixture
from tests.vision_files import IMAGE_TOKENS, write_png, write_tiny_mmproj


def _pair(data_dir: Path, gemma_path: Path, tmp_path: Path) -> None:
    ctx = AppContext(data_dir)
    try:
        entry = ctx.library.add(gemma_path)
        ctx.library.set_settings(entry.path, {
            **entry.settings, "mmproj": str(write_tiny_mmproj(tmp_path / "mmproj-f16.gguf"))})
    finally:
        ctx.close()


def _drop(widget, paths: list[Path]) -> None:  # noqa: ANN001
    """What a file manager's drag does: enter, then drop (Qt delivers no drop unannounced)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    at = QPoint(5, 5)
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(at), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton,
                                              Qt.KeyboardModifier.NoModifier))


def test_composer_thumbnails_and_the_sent_message_keeps_them(
        qtbot, open_window, data_dir: Path, gemma_path: Path, tmp_path: Path,  # noqa: ANN001, F811
        monkeypatch) -> None:  # noqa: ANN001
    prepare(data_dir, gemma_path, max_tokens=6)
    _pair(data_dir, gemma_path, tmp_path)
    window = open_window(data_dir)
    tray = window.image_tray
    # The button: the file dialog (a native modal) answers with a real file.
    chosen = write_png(tmp_path / "chosen.png", color=(250, 0, 0))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        lambda *a, **k: ([str(chosen)], "Images"))
    qtbot.mouseClick(tray.add_button, Qt.MouseButton.LeftButton)
    # Paste: an image on the clipboard, Ctrl/Cmd+V in the message box.
    pasted = QImage(30, 20, QImage.Format.Format_RGB32)
    pasted.fill(Qt.GlobalColor.darkGreen)
    QGuiApplication.clipboard().setImage(pasted)
    window.composer.setFocus()
    qtbot.keySequence(window.composer, QKeySequence.StandardKey.Paste)
    # Drop: an image file dropped on the message box.
    dropped = write_png(tmp_path / "dropped.png", color=(0, 0, 250))
    _drop(window.composer.viewport(), [dropped])
    assert len(tray.paths) == 3 and tray.paths[0] == str(chosen)
    assert [not t.picture.pixmap().isNull() for t in tray.thumbs] == [True] * 3
    assert window.composer.toPlainText() == ""  # the paste did not insert text
    tray.remove(tray.paths[1])  # the pasted one is taken out again
    assert len(tray.thumbs) == 2

    qtbot.keyClicks(window.composer, "What do you see?")
    qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    assert tray.paths == []  # sent with the message
    qtbot.waitUntil(lambda: not window.generating, timeout=120_000)
    assert not window.error_box.isVisible(), window.error_label.text()
    user, reply = (w.message for w in window.chat_view.widgets)
    assert reply.state == "done" and reply.prompt_tokens > 2 * IMAGE_TOKENS
    strip = window.chat_view.widgets[0].findChild(ThumbStrip)
    assert strip is not None and len(strip.thumbs) == 2
    assert window.context_meter.value() >= reply.prompt_tokens  # image tokens counted
    stored = window.ctx.chats.messages(window.current_id)[0]
    assert len(stored.images) == 2
    conversation_id = window.current_id
    window.close()
    window.ctx.close()

    again = open_window(data_dir)
    again.open_conversation(conversation_id)
    strip = again.chat_view.widgets[0].findChild(ThumbStrip)
    assert strip is not None and len(strip.thumbs) == 2


def test_images_for_a_model_that_cannot_see_stay_in_the_box(
        qtbot, open_window, data_dir: Path, gemma_path: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    prepare(data_dir, gemma_path, max_tokens=4)
    window = open_window(data_dir)
    qtbot.keyClicks(window.composer, "Hi")
    qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.generating, timeout=120_000)
    window.image_tray.add_paths([str(write_png(tmp_path / "p.png"))])
    qtbot.keyClicks(window.composer, "Look")
    qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    assert "cannot see images" in window.error_label.text()
    assert window.composer.toPlainText() == "Look" and len(window.image_tray.paths) == 1


def test_the_library_shows_the_pair(qtbot, data_dir: Path, gemma_path: Path,  # noqa: ANN001
                                    tmp_path: Path) -> None:
    from desktop.ui.models_page import ModelsPage

    folder = tmp_path / "lmstudio"
    folder.mkdir()
    (folder / "gemma-3-270m.gguf").symlink_to(gemma_path)
    projector = write_tiny_mmproj(folder / "mmproj-gemma-f16.gguf")
    ctx = AppContext(data_dir)
    try:
        ctx.settings.set("starter_registered", True)
        page = ModelsPage(ctx)
        qtbot.addWidget(page)
        page.show()
        page.installed.add_paths([str(folder / "gemma-3-270m.gguf")])
        qtbot.waitUntil(lambda: "Added" in page.installed.status.full_text(), timeout=30_000)
        page.installed.refresh()
        cell = page.installed.table.item(0, 0)
        assert cell.text().endswith("+ vision")
        assert str(projector) in cell.toolTip()
    finally:
        ctx.close()
