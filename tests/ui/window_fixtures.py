"""Shared helpers for the main-window tests: prepare a data dir, open the real window, and
measure what is drawn (contrast of rendered text)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, QTimer
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QWidget

from desktop.app import build_window, create_app
from desktop.core.settings import Settings
from desktop.ui import theme
from desktop.ui.chat_settings import ChatSettingsDialog


def prepare(data_dir: Path, model: Path | None, theme_mode: str | None = None,
            **sampling: object) -> None:
    settings = Settings(data_dir / "settings.json")
    settings.values["starter_registered"] = True  # tests choose their model explicitly
    settings.values["last_model"] = str(model) if model else None
    settings.values["sampling"] = {**settings.get("sampling"), "temperature": 0, **sampling}
    if theme_mode:
        settings.values["theme"] = theme_mode
    settings.save()


@pytest.fixture
def open_window(qtbot):  # noqa: ANN001, ANN201 - pytest-qt fixture
    opened = []
    app = create_app()  # the app's style sheet, as a user sees it
    style = app.styleSheet()

    def _open(data_dir: Path, size: tuple[int, int] | None = None):  # noqa: ANN202
        window = build_window(data_dir)
        qtbot.addWidget(window)
        if size:
            window.resize(*size)
        window.show()
        opened.append(window)
        return window

    yield _open
    for window in opened:
        window.close()
        window.ctx.close()
    theme.apply_theme("system")
    app.setStyleSheet(style)


def select_installed(window, path: Path):  # noqa: ANN001, ANN201
    """Open Models → Installed and select the row of the model at `path`; the page."""
    from desktop.ui.models_installed import COLUMNS

    window.open_models()
    installed = window.models_page.installed
    installed.refresh()
    row = next(r for r in range(installed.table.rowCount())
               if installed.table.item(r, COLUMNS["Path"]).text() == str(path))
    installed.table.selectRow(row)
    return installed


def edit_model_defaults(installed, change) -> None:  # noqa: ANN001
    """Open "Defaults for this model…" (a modal dialog), let `change` set it, press OK."""
    def act() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ChatSettingsDialog):
            QTimer.singleShot(10, act)  # the dialog is not open yet: look again
            return
        change(dialog)
        dialog.accept()

    QTimer.singleShot(0, act)
    installed.edit_defaults()


def region(window: QWidget, widget: QWidget) -> QRect:
    """`widget`'s rectangle in the window's coordinates, clipped to the window."""
    top_left = widget.mapTo(window, QPoint(0, 0))
    return QRect(top_left, widget.size()).intersected(window.rect())


def drawn_contrast(image: QImage, rect: QRect) -> float:
    """The contrast between the commonest colour in `rect` (its background) and the pixel
    farthest from it (the text's ink): what the eye reads, whatever set the colours."""
    pixels = Counter()
    for y in range(rect.top(), rect.bottom() + 1):
        for x in range(rect.left(), rect.right() + 1):
            pixels[image.pixel(x, y)] += 1
    background = QColor.fromRgb(pixels.most_common(1)[0][0])
    return max(theme.contrast(QColor.fromRgb(p), background) for p in pixels)
