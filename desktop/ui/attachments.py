"""Files dropped on a chat: a highlight over the conversation while files are dragged over the
window, and a row of file chips (each dropped file's name and whether it is read yet) above
the message box."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from desktop.ui import theme

DROP_TEXT = "Drop files to ask about them in this chat"


class DropHighlight(QWidget):
    """A translucent frame with a sentence, laid over `target` while a drag is over the
    window. Mouse events pass through it."""

    def __init__(self, target: QWidget) -> None:
        super().__init__(target)
        self.target = target
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAccessibleName("Drop here")
        self.setAccessibleDescription(DROP_TEXT)
        target.installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.target and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.target.rect())
        return False

    def show_over(self) -> None:
        self.setGeometry(self.target.rect())
        self.raise_()
        self.show()

    def paintEvent(self, _: QPaintEvent) -> None:  # noqa: N802 - Qt override
        palette = self.palette()
        accent = palette.color(QPalette.ColorRole.Highlight)
        fill = QColor(accent)
        fill.setAlpha(40)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(fill)
        painter.setPen(QPen(accent, 3, Qt.PenStyle.DashLine))
        painter.drawRoundedRect(self.rect().adjusted(4, 4, -4, -4), 12, 12)
        painter.setPen(theme.readable(accent, palette.color(QPalette.ColorRole.Base)))
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                         DROP_TEXT)


class FileChip(QToolButton):
    """One dropped file: its name (elided in the middle, path in the tooltip) and state."""

    def __init__(self, path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.name = Path(path).name or path
        self.setObjectName("file-chip")
        self.setAutoRaise(False)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.set_state("reading…")

    def set_state(self, state: str, tone: str | None = None) -> None:
        self.state = state
        shown = self.fontMetrics().elidedText(self.name, Qt.TextElideMode.ElideMiddle, 180)
        self.setText(f"📄 {shown} · {state}")
        self.setToolTip(f"{self.path}\n{state}")
        self.setAccessibleName(f"Attached file {self.name}, {state}")
        theme.set_text_tone(self, tone)


class FileChips(QWidget):
    """The chips row; hidden while empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Files in this chat")
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(6)
        self.more = QLabel()
        self.row.addWidget(self.more)
        self.row.addStretch(1)
        self.chips: list[FileChip] = []
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def add(self, paths: list[str]) -> list[FileChip]:
        added = []
        for path in paths:
            chip = FileChip(path, self)
            self.chips.append(chip)
            added.append(chip)
        self._lay_out()
        return added

    def _lay_out(self) -> None:
        # At most four chips are drawn; the rest are counted, so the row never widens.
        for chip in self.chips:
            self.row.removeWidget(chip)
            chip.hide()
        for index, chip in enumerate(self.chips[:4]):
            self.row.insertWidget(index, chip)
            chip.show()
        extra = len(self.chips) - 4
        self.more.setText(f"and {extra} more" if extra > 0 else "")
        self.more.setVisible(extra > 0)

    def clear(self) -> None:
        for chip in self.chips:
            chip.setParent(None)
            chip.deleteLater()
        self.chips = []
        self._lay_out()
