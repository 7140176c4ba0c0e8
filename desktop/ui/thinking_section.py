"""A reasoning model's thinking in its reply: a "Thinking… 4 s" header, collapsed by default,
that counts while the model thinks and then says "Thought for 12 s"; pressing it (mouse, or
Space/Enter, also from the conversation's arrow keys) shows the thinking as plain, selectable
text above the answer.

While collapsed the streamed thinking is only kept as a string (no layout work per tick);
while expanded only the new part is appended. Colours come from the message's palette: the
muted text colour the message already checked for 4.5:1 on its background.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPalette, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

TICK_MS = 1000  # the live label counts whole seconds
BAR_WIDTH = 2  # the line left of the expanded thinking
INDENT = 10


def duration(seconds: float) -> str:
    """12 s, 1 min 5 s; under a second reads as such rather than as "0 s"."""
    if seconds < 1:
        return "under 1 s"
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


class ThinkingHeader(QPushButton):
    """The toggle. Not a Tab stop (the conversation is one; its arrow keys reach this like the
    message's buttons), but Space and Enter toggle it whenever it has the keyboard."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFlat(True)
        self.setCheckable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        # Its own rules win over the app's (whose checked buttons get a grey fill that the
        # muted text was never checked against): no fill when expanded, a border on hover.
        self.setStyleSheet(
            "QPushButton, QPushButton:checked, QPushButton:pressed { background: transparent;"
            " border: 1px solid transparent; border-radius: 6px; padding: 2px 4px;"
            " text-align: left; }"
            " QPushButton:hover { border: 1px solid palette(mid); }")

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) \
                and not event.isAutoRepeat():
            self.click()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Space:
            return  # pressed already toggled it; QPushButton would click a second time
        super().keyReleaseEvent(event)


class ThinkingText(QTextBrowser):
    """The thinking itself: plain text, selectable, as tall as its content."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                     | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # select and Ctrl+C; not a Tab stop
        self.setAccessibleName("Thinking text")
        self.viewport().setAutoFillBackground(False)
        self.document().setDocumentMargin(0)
        self.document().documentLayout().documentSizeChanged.connect(self.fit)
        self.setFixedHeight(16)

    def fit(self, *_: object) -> None:
        height = max(16, int(self.document().size().height() + 0.999) + 2 * self.frameWidth())
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        super().resizeEvent(event)
        self.fit()

    def wheelEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        event.ignore()  # the conversation scrolls, never this


class ThinkingSection(QWidget):
    """Header and (when expanded) the thinking. Driven by the message widget: start_live()
    when the first thinking arrives, set_text() as it grows, stop_live() when the answer
    starts, show_final() with the stored reasoning and its duration."""

    expanded_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clock: Callable[[], float] = time.monotonic
        self.text = ""
        self.live = False
        self.started: float | None = None
        self.seconds: float | None = None  # how long it thought, once known
        self._shown = 0  # characters of self.text in the text widget (when expanded)
        self._bar = QColor("#888888")
        self._layout = layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 2)
        layout.setSpacing(2)
        self.header = ThinkingHeader(self)
        self.header.toggled.connect(self._toggled)
        layout.addWidget(self.header, 0, Qt.AlignmentFlag.AlignLeft)
        self.body = ThinkingText(self)
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.setViewportMargins(INDENT, 0, 0, 0)
        self.body.hide()
        layout.addWidget(self.body)
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.tick)
        self._relabel()

    # --- state -----------------------------------------------------------------------
    @property
    def expanded(self) -> bool:
        return self.header.isChecked()

    def set_expanded(self, on: bool) -> None:
        self.header.setChecked(on)

    def start_live(self, since: float | None = None) -> None:
        """The model started thinking (at `since`, a clock() time, when it began earlier)."""
        self.live = True
        self.seconds = None
        self.started = since if since is not None else self.clock()
        self._timer.start()
        self._relabel()

    def stop_live(self) -> None:
        """The answer started: the count stops at what it reached (the stored duration,
        measured by the worker, replaces it at the end)."""
        if self.live and self.started is not None:
            self.seconds = max(0.0, self.clock() - self.started)
        self.live = False
        self._timer.stop()
        self._relabel()

    def show_final(self, reasoning: str, seconds: float | None) -> None:
        self.live = False
        self._timer.stop()
        self.seconds = seconds if seconds is not None else self.seconds
        self.set_text(reasoning)
        self._relabel()

    def set_text(self, text: str) -> None:
        if text == self.text:
            return
        grown = text.startswith(self.text) and self._shown == len(self.text)
        self.text = text
        if not self.expanded:
            return
        if grown:
            cursor = QTextCursor(self.body.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(text[self._shown:])
        else:
            self.body.setPlainText(text)
        self._shown = len(text)

    def tick(self) -> None:
        self._relabel()

    def label(self) -> str:
        if self.live:
            elapsed = max(0.0, self.clock() - (self.started or self.clock()))
            return f"Thinking… {int(elapsed)} s"
        if self.seconds is None:
            return "Thoughts"
        return f"Thought for {duration(self.seconds)}"

    def _relabel(self) -> None:
        label = self.label()
        arrow = "▾" if self.expanded else "▸"
        self.header.setText(f"{arrow} {label}")
        self.header.setFixedWidth(self.header.fontMetrics().horizontalAdvance(
            self.header.text()) + 18)
        self.header.setAccessibleName(label)
        self.header.setAccessibleDescription(
            ("Expanded: the model's thinking is shown below. " if self.expanded else
             "Collapsed. ") + "Space or Enter " + ("hides" if self.expanded else "shows")
            + " the thinking.")
        self.header.setToolTip("Hide the thinking" if self.expanded else "Show the thinking")

    def _toggled(self, on: bool) -> None:
        if on:
            self.body.setPlainText(self.text)
            self._shown = len(self.text)
        self.body.setVisible(on)
        # Expanded, the thinking ends a little apart from the answer below it.
        self._layout.setContentsMargins(0, 0, 0, 8 if on else 2)
        self._relabel()
        self.expanded_changed.emit(on)

    # --- colours -----------------------------------------------------------------------
    def apply_colors(self, palette: QPalette, muted: QColor, bar: QColor) -> None:
        """The message's palette with the muted colour for the header and the thinking (the
        caller checked it for 4.5:1 on the background) and the bar's colour (3:1)."""
        own = QPalette(palette)
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                         QPalette.ColorRole.ButtonText):
                own.setColor(group, role, muted)
        self.setPalette(own)
        self.header.setPalette(own)
        self.body.setPalette(own)
        self._bar = QColor(bar)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt override
        super().paintEvent(event)
        if self.body.isVisible():
            painter = QPainter(self)
            geometry = self.body.geometry()
            painter.fillRect(geometry.x() + 2, geometry.y(), BAR_WIDTH, geometry.height(),
                             self._bar)
            painter.end()
