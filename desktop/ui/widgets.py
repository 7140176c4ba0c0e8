"""Small widgets the Models and Documents windows share: tables whose long texts elide inside
their cells (full text in a tooltip) instead of widening the window, a status line that never
grows, and table items coloured with readable tones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QBrush, QFontMetrics, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.ui import theme

# What a widget receives when the app's theme changes (Qt sends PaletteChange to widgets,
# not ApplicationPaletteChange, once a style sheet is in use).
THEME_EVENTS = (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange,
                QEvent.Type.StyleChange)
TONE_ROLE = Qt.ItemDataRole.UserRole + 7  # which tone a cell has, to recolour it on a theme change


def size_text(n: int | float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


class _ProseDelegate(QStyledItemDelegate):
    """Sentences elide at the end: their start says what they are about."""

    def initStyleOption(self, option: QStyleOptionViewItem,  # noqa: N802 - Qt override
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideRight


def make_table(headers: list[str], name: str, widths: dict[int, int] | None = None,
               stretch: int | None = None, prose: tuple[int, ...] = ()) -> QTableWidget:
    """A read-only, row-selecting table. Columns are user-resizable and start at `widths`;
    texts that do not fit elide in the middle (file and model names keep both ends; `prose`
    columns elide at the end) and show in full as a tooltip. The table scrolls sideways
    rather than grow the window."""
    table = QTableWidget(0, len(headers))
    if prose:
        table._prose = _ProseDelegate(table)  # type: ignore[attr-defined]  # kept alive
        for column in prose:
            table.setItemDelegateForColumn(column, table._prose)  # type: ignore[attr-defined]
    table.setHorizontalHeaderLabels(headers)
    table.setAccessibleName(name)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.setWordWrap(False)
    table.setAlternatingRowColors(True)
    table.verticalHeader().setVisible(False)
    table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    table.setMinimumSize(200, 120)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setMinimumSectionSize(40)
    header.setStretchLastSection(stretch is None)
    if stretch is not None:
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    for column, width in (widths or {}).items():
        table.setColumnWidth(column, width)
    return table


def item(text: str, tooltip: str | None = None, tone: str | None = None) -> QTableWidgetItem:
    """A cell; its tooltip is the full text unless given (so an elided text can be read)."""
    cell = QTableWidgetItem(text)
    cell.setToolTip(text if tooltip is None else tooltip)
    if tone:
        cell.setData(TONE_ROLE, tone)
        cell.setForeground(QBrush(theme.tone(tone)))
    return cell


def retone(root: QWidget) -> None:
    """After a theme change: recolour toned table cells for the new backgrounds (status lines
    do it themselves)."""
    for table in root.findChildren(QTableWidget):
        for row in range(table.rowCount()):
            for column in range(table.columnCount()):
                cell = table.item(row, column)
                if cell is not None and cell.data(TONE_ROLE):
                    cell.setForeground(QBrush(theme.tone(cell.data(TONE_ROLE))))


def button(label: str, handler: Callable[[], Any], tip: str = "") -> QPushButton:
    widget = QPushButton(label)
    widget.setAccessibleName(label.rstrip("…"))
    if tip:
        widget.setToolTip(tip)
        widget.setAccessibleDescription(tip)
    widget.clicked.connect(lambda _=False: handler())
    return widget


def button_row(column: QVBoxLayout, actions: list[tuple[str, Callable[[], Any]]],
               align_right: bool = False) -> list[QPushButton]:
    row = QHBoxLayout()
    if align_right:
        row.addStretch(1)
    buttons = [button(label, handler) for label, handler in actions]
    for widget in buttons:
        row.addWidget(widget)
    if not align_right:
        row.addStretch(1)
    column.addLayout(row)
    return buttons


class StatusLine(QLabel):
    """A status or error line of at most two lines: longer texts are elided (the whole text is
    the tooltip), so a long message never grows the window or pushes widgets away."""

    LINES = 2

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.tone: str | None = None
        self.setAccessibleName(name)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        metrics = QFontMetrics(self.font())
        self.setFixedHeight(metrics.lineSpacing() * self.LINES + 4)

    def show_text(self, text: str, tone: str | None = None) -> None:
        self._full, self.tone = text, tone
        theme.set_text_tone(self, tone)
        self.setToolTip(text)
        self.setAccessibleDescription(text)
        self._fit()

    def full_text(self) -> str:
        return self._full

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(200, self.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(50, self.height())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() in THEME_EVENTS and self.tone:
            # The tone for the new theme's background (setting it again is a no-op, so the
            # change events this causes end here).
            wanted = theme.tone(self.tone).name()
            if wanted not in self.styleSheet():
                theme.set_text_tone(self, self.tone)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        metrics = QFontMetrics(self.font())
        # Word wrapping leaves ragged line ends: budget a bit less than LINES full widths.
        budget = int(max(50, self.width()) * self.LINES * 0.85)
        shown = metrics.elidedText(self._full, Qt.TextElideMode.ElideRight, budget)
        if shown != self.text():
            self.setText(shown)
