"""The real main window, offscreen: usable at 800x600 and never resizing itself, readable in
light and dark, and operable from the keyboard with named controls."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from desktop.core.chat.sample_chats import seed_sample_chats
from desktop.core.context import AppContext
from desktop.ui import theme
from desktop.ui.actions import focus_chain
from tests.ui.test_models_window import accessible_name, controls
from tests.ui.window_fixtures import drawn_contrast, open_window, prepare, region

__all__ = ["open_window"]  # the fixture, imported for pytest

LONG = "Quarterly reports, board minutes and every contract we signed between 2015 and 2024"


def _seed(data_dir: Path) -> int:
    ctx = AppContext(data_dir)
    chat = seed_sample_chats(ctx)
    collection = ctx.documents.create_collection(LONG)
    ctx.documents.attach(chat, collection)
    ctx.settings.values["last_conversation"] = chat
    ctx.settings.save()
    ctx.close()
    return chat


def _settle(qtbot, window) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: window.start_panel.view is not None, timeout=30_000)
    QApplication.processEvents()


def test_window_is_usable_at_800x600_and_long_labels_never_resize_it(
        qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    chat = _seed(data_dir)
    window = open_window(data_dir, (800, 600))
    _settle(qtbot, window)
    assert window.current_id == chat
    hint = window.minimumSizeHint()
    assert hint.width() <= 800 and hint.height() <= 600, hint
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.size() == QSize(800, 600))

    # Every label that grows with data, at its longest.
    window.models_button.set_full_text("Models… (paused downloads)")
    window._update_sources_button()  # "Answer from: <the long collection name>"
    window.model_status.show_text("Loaded, context 131072: 28 of 28 layers on the GPU. " * 6)
    window.show_error("The model stopped unexpectedly while it was reading the prompt. " * 5)
    window.model_box.addItem("Meta-Llama-3.1-70B-Instruct-abliterated-uncensored-IQ2_XXS-"
                             "imatrix-merged · IQ2_XXS · 21,140 MB · llama", "/x.gguf")
    window.model_box.setCurrentIndex(window.model_box.count() - 1)
    ctx = window.ctx
    ctx.chats.create_conversation("A chat title so long that no sidebar could ever show all "
                                  "of it on one line, however wide the window was made")
    window.refresh_conversations()
    for _ in range(3):
        QApplication.processEvents()
    assert window.size() == QSize(800, 600), "the window resized itself"
    hint = window.minimumSizeHint()
    assert hint.width() <= 800 and hint.height() <= 600, hint

    # Long texts are elided, in full in their tooltips; every control is on screen.
    sources = window.sources_button
    assert LONG in sources.text() and sources.shown_text().endswith("…")
    assert LONG in sources.toolTip()
    assert window.model_box.shown_text() != window.model_box.currentText()
    assert "…" in window.model_box.shown_text()  # elided in the middle, both ends kept
    assert window.model_box.shown_text().startswith("Meta")
    assert window.model_box.toolTip() == window.model_box.currentText()
    assert window.model_status.toolTip().startswith("Loaded, context 131072")
    for widget in [*window.toolbar.controls(), window.send_button, window.stop_button,
                   window.composer, window.sidebar.new_button, window.sidebar.search,
                   window.copy_details]:
        assert window.rect().contains(region(window, widget)), widget.accessibleName()
        assert widget.width() >= 40, widget.accessibleName()
    # The fixed labels keep their whole text at 800 px.
    for button in (window.documents_button, window.settings_button):
        assert button.shown_text() == button.text()
    assert window.models_button.shown_text().startswith("Models…")


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_every_text_is_readable_in_light_and_dark(qtbot, open_window, data_dir: Path,
                                                  mode: str) -> None:  # noqa: ANN001
    prepare(data_dir, None, theme_mode=mode)
    _seed(data_dir)
    window = open_window(data_dir, (1000, 700))
    _settle(qtbot, window)
    assert theme.is_dark() == (mode == "dark")
    window.show_error("Something failed: this is what the user reads.")
    window.model_status.show_text("Loaded, context 4096: CPU.")
    last = window.chat_view.widgets[-1]
    qtbot.waitUntil(lambda: not last.visibleRegion().isEmpty())
    window.chat_view.ensureWidgetVisible(last.copy_button)
    QApplication.processEvents()
    image = window.grab().toImage()

    checked = []
    named: list[tuple[str, QWidget]] = [
        ("model status", window.model_status), ("error", window.error_label),
        ("Copy details", window.copy_details), ("Send", window.send_button),
        ("New chat", window.sidebar.new_button), ("chat list", window.sidebar.view),
        ("Copy (message)", last.copy_button), ("Regenerate (message)", last.regenerate_button),
        *[(w.accessibleName(), w) for w in window.toolbar.controls()],
    ]
    for name, widget in named:
        if not widget.isVisible():
            continue
        rect = region(window, widget)
        assert not rect.isEmpty(), name
        ratio = drawn_contrast(image, rect)
        checked.append(name)
        assert ratio >= theme.MIN_CONTRAST, (mode, name, round(ratio, 2))
    assert "Copy (message)" in checked and "model status" in checked

    # Colours set through palettes (tones) reach 4.5:1 on their backgrounds, too.
    for label in window.findChildren(QLabel):
        if not label.isVisibleTo(window) or not label.text():
            continue
        palette = label.palette()
        ratio = theme.contrast(palette.color(QPalette.ColorRole.WindowText),
                               palette.color(QPalette.ColorRole.Window))
        assert ratio >= theme.MIN_CONTRAST, (mode, label.accessibleName() or label.text())
    # The sidebar's group headers and busy mark use readable colours.
    header = window.sidebar.model.index(0)
    colour = header.data(Qt.ItemDataRole.ForegroundRole)
    assert isinstance(colour, QColor)
    assert theme.contrast(colour, window.palette().color(QPalette.ColorRole.Window)) >= 4.5


def test_the_status_line_follows_a_theme_switch(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None, theme_mode="light")
    window = open_window(data_dir, (900, 650))
    _settle(qtbot, window)
    window.show_error("An error the user must read.")
    theme.apply_theme("dark")
    QApplication.processEvents()
    image = window.grab().toImage()
    for widget in (window.model_status, window.error_label):
        assert drawn_contrast(image, region(window, widget)) >= theme.MIN_CONTRAST


def test_keyboard_focus_order_shortcuts_and_names(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    chat = _seed(data_dir)
    window = open_window(data_dir, (1000, 700))
    _settle(qtbot, window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)

    # Tab walks the window in reading order: sidebar, toolbar, conversation, message, Send.
    expected = [w for w in focus_chain(window)
                if w.isVisible() and w.isEnabled() and w.focusPolicy() & Qt.FocusPolicy.TabFocus]
    window.sidebar.new_button.setFocus(Qt.FocusReason.TabFocusReason)
    seen = [QApplication.focusWidget()]
    for _ in range(len(expected) - 1):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    assert seen == expected, [w.accessibleName() for w in seen]

    # Every control has a name a screen reader can say.
    unnamed = [type(w).__name__ for w in controls(window)
               if w.isVisibleTo(window) and not accessible_name(w).strip()]
    assert unnamed == []

    # Ctrl+F goes to the search; Esc there clears it (and does not stop anything).
    qtbot.keyClick(window.composer, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.sidebar.search
    qtbot.keyClicks(window.sidebar.search, "nothing matches this")
    assert window.sidebar.empty_label.isVisible()
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_Escape)
    assert window.sidebar.search.text() == "" and window.sidebar.view.isVisible()
    # Ctrl+N starts a new chat, and the message box has the focus.
    assert window.current_id == chat
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.current_id is None and window.stack.currentWidget() is window.start_panel
    assert QApplication.focusWidget() is window.composer
    # Ctrl+, (Settings) is the app-wide action, installed once.
    keys = [a.shortcut().toString() for a in window.actions()]
    assert keys.count("Ctrl+,") == 1


def test_focus_ring_is_visible(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None, theme_mode="light")
    window = open_window(data_dir, (1000, 700))
    _settle(qtbot, window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    highlight = window.palette().color(QPalette.ColorRole.Highlight)

    def ring_pixels(widget: QWidget) -> int:
        image = widget.grab().toImage()
        return sum(1 for y in range(image.height()) for x in range(image.width())
                   if QColor.fromRgb(image.pixel(x, y)) == highlight)

    for widget in (window.documents_button, window.sidebar.search, window.sidebar.new_button):
        window.composer.setFocus(Qt.FocusReason.TabFocusReason)
        before = ring_pixels(widget)
        widget.setFocus(Qt.FocusReason.TabFocusReason)
        qtbot.waitUntil(widget.hasFocus)
        after = ring_pixels(widget)
        # A 2 px ring around the control: at least its perimeter in the highlight colour.
        assert after - before >= widget.width() + widget.height(), widget.accessibleName()
