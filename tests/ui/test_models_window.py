"""The Models window as a user meets it: at 800x600, in light and dark, offline, after errors,
with the same file added twice, and through a screen reader's eyes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QPalette
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QTabBar,
    QTableWidget,
    QWidget,
)

from desktop.core.context import AppContext
from desktop.core.models import hub
from desktop.ui import theme
from desktop.ui.models_page import ModelsPage
from tests.fake_hub import FakeHub
from tests.gguf_files import write_small_gguf

LONG = "A very long message that goes on and on " * 20


@pytest.fixture
def ctx(data_dir: Path) -> Iterator[AppContext]:
    context = AppContext(data_dir)
    context.settings.set("starter_registered", True)
    yield context
    context.close()


@pytest.fixture
def page(qtbot, ctx: AppContext) -> ModelsPage:  # noqa: ANN001
    widget = ModelsPage(ctx)
    qtbot.addWidget(widget)
    widget.show()
    return widget


@pytest.fixture
def themed() -> Iterator[None]:
    yield
    theme.apply_theme("system")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def accessible_name(widget: QWidget) -> str:
    """What a screen reader announces for the widget."""
    interface = QAccessible.queryAccessibleInterface(widget)
    return interface.text(QAccessible.Text.Name) if interface is not None else ""


def controls(root: QWidget) -> list[QWidget]:
    """The widgets a user operates, without the parts Qt builds inside other controls."""
    found = []
    for widget in root.findChildren(QWidget):
        if not isinstance(widget, (QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox,
                                   QAbstractItemView, QProgressBar)):
            continue
        parent = widget.parentWidget()
        # Parts Qt builds inside a control (a table's headers and corner button, a spin
        # box's editor, a combo box's popup list) are announced as part of that control.
        if isinstance(parent, (QTabBar, QAbstractSpinBox, QComboBox, QAbstractItemView)) or \
                (parent is not None and parent.inherits("QComboBoxPrivateContainer")):
            continue
        found.append(widget)
    return found


def assert_readable(root: QWidget) -> None:
    """Every visible label and every coloured table cell reaches 4.5:1 against its
    background."""
    for label in root.findChildren(QLabel):
        if not label.isVisibleTo(root) or not label.text():
            continue
        palette = label.palette()
        ratio = theme.contrast(palette.color(QPalette.ColorRole.WindowText),
                               palette.color(QPalette.ColorRole.Window))
        assert ratio >= theme.MIN_CONTRAST, (label.accessibleName() or label.text(), ratio)
    for table in root.findChildren(QTableWidget):
        palette = table.palette()
        for row in range(table.rowCount()):
            for column in range(table.columnCount()):
                cell = table.item(row, column)
                if cell is None or cell.data(Qt.ItemDataRole.ForegroundRole) is None:  # default colour
                    continue
                for background in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase):
                    ratio = theme.contrast(cell.foreground().color(), palette.color(background))
                    assert ratio >= theme.MIN_CONTRAST, (cell.text(), ratio)


def test_contrast_helper_follows_wcag() -> None:
    from PySide6.QtGui import QColor

    assert round(theme.contrast(QColor("black"), QColor("white")), 1) == 21.0
    assert round(theme.contrast(QColor("#777777"), QColor("white")), 2) == 4.48
    olive = QColor("#7d6608")  # the fit label's old hard-coded colour, on a dark base
    assert theme.contrast(olive, QColor("#2a2c30")) < 4.5
    fixed = theme.readable(olive, QColor("#2a2c30"))
    assert theme.contrast(fixed, QColor("#2a2c30")) >= 4.5


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_every_label_and_fit_is_readable(qtbot, ctx: AppContext, mode: str, themed: None,
                                         tmp_path: Path) -> None:
    theme.apply_theme(mode)
    small = write_small_gguf(tmp_path / "small.gguf")
    ctx.library.add(small)
    missing = write_small_gguf(tmp_path / "gone.gguf")
    ctx.library.add(missing)
    missing.unlink()  # shown as "file missing" in the error tone
    page = ModelsPage(ctx)
    qtbot.addWidget(page)
    page.show()
    page.search_tab.status.show_text("The Hub cannot be reached.", "error")
    page.downloads.status.show_text("Downloaded and verified.", "good")
    fits = {page.recommended.table.item(r, 3).text()
            for r in range(page.recommended.table.rowCount())}
    assert fits  # the fit labels are among the checked cells
    assert theme.is_dark(page.palette()) == (mode == "dark")
    for index in range(page.tabs.count()):
        page.tabs.setCurrentIndex(index)
        assert_readable(page)


def test_window_fits_800x600_and_long_texts_do_not_grow_it(qtbot, page: ModelsPage,
                                                           ctx: AppContext,
                                                           tmp_path: Path) -> None:
    hint = page.minimumSizeHint()
    assert hint.width() <= 800 and hint.height() <= 600, hint
    page.resize(800, 600)
    qtbot.waitUntil(lambda: page.width() == 800)
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 12)
    ctx.set_models_dir(deep)
    page.installed.show_folder()
    for tab in (page.recommended, page.search_tab, page.installed, page.downloads):
        tab.status.show_text(LONG, "error")
    page.machine_label.show_text(LONG)
    for index in range(page.tabs.count()):
        page.tabs.setCurrentIndex(index)
        qtbot.waitUntil(lambda: page.tabs.currentWidget().isVisible())
        assert page.size().width() == 800 and page.size().height() == 600
        after = page.minimumSizeHint()
        assert after.width() <= 800 and after.height() <= 600, after
    assert page.downloads.status.toolTip() == LONG  # cut on screen, whole in the tooltip


def test_every_control_has_an_accessible_name(page: ModelsPage) -> None:
    for index in range(page.tabs.count()):
        page.tabs.setCurrentIndex(index)
    unnamed = [f"{type(w).__name__}" for w in controls(page) if not accessible_name(w)]
    assert unnamed == []


def test_no_network_says_so_in_words_and_keeps_speed_in_view(qtbot, page: ModelsPage,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    server = FakeHub()
    server.add_file("acme/tiny-GGUF", "tiny-Q4_0.gguf", write_small_gguf(tmp_path / "t.gguf"))
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    [model] = hub.repo_files("acme/tiny-GGUF").models
    server.stop()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # offline now
    page.resize(800, 600)
    job = page.start_download("acme/tiny-GGUF", model)
    qtbot.waitUntil(lambda: job.state.status == "failed", timeout=15_000)
    qtbot.waitUntil(lambda: page.downloads.status.tone == "error", timeout=5000)
    message = page.downloads.status.full_text()
    assert message.startswith(("No network", "No server answers")), message
    assert "Errno" not in message and "[" not in message
    assert "Press Resume" in message
    table = page.downloads.table
    cell = table.item(0, 3)
    assert cell.text().startswith("Failed: ") and "Errno" not in cell.text()
    assert cell.toolTip() == cell.text()  # elided on screen, whole in the tooltip
    # Speed / ETA stays on screen however long the status is: status is the last column.
    speed_right = table.columnViewportPosition(2) + table.columnWidth(2)
    assert 0 <= table.columnViewportPosition(2) and speed_right <= table.viewport().width()
    status_right = table.columnViewportPosition(3) + table.columnWidth(3)
    assert status_right <= table.viewport().width()
    assert page.width() == 800


def test_a_hub_error_goes_away_after_a_success(qtbot, page: ModelsPage,
                                               monkeypatch: pytest.MonkeyPatch,
                                               gemma_path: Path) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    search = page.search_tab
    search.search_box.setText("gemma")
    search.search()
    qtbot.waitUntil(lambda: search.status.tone == "error", timeout=15_000)
    assert "Cannot reach" in search.status.full_text()
    # It shows where it happened, not on every tab.
    for tab in (page.recommended, page.installed, page.downloads):
        assert tab.status.tone != "error"
    server = FakeHub()
    server.add_file("google/gemma-3-270m-GGUF", "gemma-3-270m-Q4_K_M.gguf", gemma_path,
                    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    try:
        search.search()
        qtbot.waitUntil(lambda: search.results.rowCount() == 1, timeout=15_000)
        assert search.status.tone is None and "Cannot reach" not in search.status.full_text()
    finally:
        server.stop()


def test_the_same_file_from_two_paths_is_one_entry(qtbot, page: ModelsPage,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    original = write_small_gguf(tmp_path / "model.gguf")
    link = tmp_path / "link.gguf"
    link.symlink_to(original)
    monkeypatch.chdir(tmp_path)
    page.installed.add_paths([str(original), str(link), "./model.gguf", "model.gguf"])
    qtbot.waitUntil(lambda: "Added" in page.installed.status.full_text(), timeout=10_000)
    assert [e.path for e in page.ctx.library.list()] == [str(original)]
    assert page.installed.table.rowCount() == 1


def test_downloads_live_on_the_app_not_the_window(qtbot, ctx: AppContext, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeHub()
    server.add_file("acme/tiny-GGUF", "tiny-Q4_0.gguf", write_small_gguf(tmp_path / "t.gguf"))
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    try:
        [model] = hub.repo_files("acme/tiny-GGUF").models
        first = ModelsPage(ctx)  # deleted below, so not handed to qtbot
        job = first.start_download("acme/tiny-GGUF", model)
        first.close()
        first.deleteLater()  # the window goes; the download goes on
        qtbot.waitUntil(lambda: job.state.status == "done", timeout=30_000)
        second = ModelsPage(ctx)
        qtbot.addWidget(second)
        assert second.queue is ctx.downloads
        assert second.downloads.table.item(0, 3).text() == "Done"
        assert ctx.library.find(job.path) is not None
        assert not ctx.has_unfinished_downloads()
    finally:
        server.stop()


def test_model_picker_elides_in_the_middle_with_the_full_name_as_tooltip(qtbot) -> None:
    from desktop.ui.model_picker import ModelPicker

    picker = ModelPicker()
    qtbot.addWidget(picker)
    name = "Meta-Llama-3.1-8B-Instruct-abliterated-with-a-long-tail · Q4_K_M · 4,920 MB"
    picker.addItem(name)
    picker.resize(220, picker.sizeHint().height())
    picker.show()
    shown = picker.shown_text()
    assert "…" in shown and shown.startswith("Meta") and shown.endswith("MB")
    assert picker.toolTip() == name
    assert picker.sizeHint().width() < 400  # a long name does not widen the window


def test_theme_switches_the_whole_app(themed: None) -> None:
    theme.apply_theme("dark")
    assert theme.is_dark(QApplication.palette())
    theme.apply_theme("light")
    assert not theme.is_dark(QApplication.palette())


def test_network_failures_are_told_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    from desktop.core.models.download import DownloadError, _reason
    from desktop.core.models.download_queue import check_network

    lookup = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    assert _reason(lookup) == "no network: the server's name cannot be looked up"
    assert _reason(ConnectionRefusedError(111, "Connection refused")) == \
        "the server refused the connection"
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(DownloadError) as refused:
        check_network(kept=12_000_000)
    assert "12 MB already downloaded are kept" in refused.value.message
    assert "Errno" not in refused.value.message
    assert "Connection refused" in refused.value.details  # kept for "copy details"
