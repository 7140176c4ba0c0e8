"""The chat toolbar: model picker, Models…, Documents…, "Answer from", Chat settings; and the
eliding button they use, so no label, however long, widens the window.

A QPushButton's minimum size is its whole text: one long label ("Answer from: <collection
name>") used to force the window to 1,200 px and widen it as the text grew. Here a button
asks for its full text only as a preference and shrinks down to a few characters, drawing
the text elided with the whole of it in a tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QPaintEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyleOptionButton,
    QStylePainter,
    QToolButton,
    QWidget,
)

from desktop.ui.model_picker import ModelPicker


class ElidedButton(QPushButton):
    """A push button whose text elides (end or middle) when there is no room for it."""

    def __init__(self, text: str, name: str, tip: str = "",
                 mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
                 minimum_text: str | None = None, widest: int = 300,
                 parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._mode = mode
        self._tip = tip
        # Shrinks to this text (its short form: "Models…" of "Models… (paused downloads)").
        self._minimum_text = minimum_text if minimum_text is not None else text
        self._widest = widest
        self.setAccessibleName(name)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self.setText(text)
        # The tooltip always holds the whole text (and what the button does).
        self.setToolTip(text if not self._tip else f"{text}\n{self._tip}")
        self.setAccessibleDescription(text if not self._tip else f"{text}. {self._tip}")
        self.updateGeometry()
        self.update()

    def _text_room(self) -> int:
        option = QStyleOptionButton()
        self.initStyleOption(option)
        contents = self.style().subElementRect(QStyle.SubElement.SE_PushButtonContents,
                                               option, self)
        room = contents.width()
        if self.menu() is not None:
            room -= self.style().pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator,
                                             option, self)
        return max(10, room)

    def shown_text(self) -> str:
        """The text as drawn at the button's current width."""
        return self.fontMetrics().elidedText(self.text(), self._mode, self._text_room())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint()
        # Prefer the whole text, but never wider than `widest`.
        return QSize(min(hint.width(), self._widest), hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint()
        extra = self.fontMetrics().horizontalAdvance(self.text()) - \
            self.fontMetrics().horizontalAdvance(self._minimum_text)
        return QSize(min(hint.width(), max(40, hint.width() - max(0, extra))), hint.height())

    def paintEvent(self, _: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QStylePainter(self)
        option = QStyleOptionButton()
        self.initStyleOption(option)
        option.text = self.shown_text()
        painter.drawControl(QStyle.ControlElement.CE_PushButton, option)


class ContextMeter(QWidget):
    """How much of the model's context the chat uses: the numbers in words beside a thin
    bar (text drawn over the bar's fill was unreadable where the fill reached it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Context used")
        self.setToolTip("How much of the model's context this chat uses")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.label = QLabel()
        self.label.setAccessibleName("Context used")
        self.bar = QProgressBar()
        self.bar.setObjectName("context-bar")
        self.bar.setTextVisible(False)
        self.bar.setFixedSize(60, 8)
        self.bar.setAccessibleName("Context used")
        row.addWidget(self.label)
        row.addWidget(self.bar)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)

    def value(self) -> int:
        return self.bar.value()

    def maximum(self) -> int:
        return self.bar.maximum()

    def show_usage(self, used: int, n_ctx: int) -> None:
        used = min(used, n_ctx)
        self.bar.setMaximum(max(1, n_ctx))
        self.bar.setValue(used)
        self.label.setText(f"{used:,} / {n_ctx:,} tokens")
        self.setAccessibleDescription(f"{used} of {n_ctx} tokens")
        self.bar.setAccessibleDescription(f"{used} of {n_ctx} tokens")


class ChatToolbar(QWidget):
    """The row above the conversation. Its widgets are plain attributes; the window connects
    them (it owns what they do)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chat-toolbar")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.model_box = ModelPicker()
        self.model_box.setMinimumContentsLength(10)
        self.model_box.setToolTip("The model that answers in this chat")
        self.models_button = ElidedButton("Models…", "Models",
                                          "Find, download and manage models",
                                          minimum_text="Models…")
        self.documents_button = ElidedButton(
            "Documents…", "Documents", "Collections of your files, indexed on this computer")
        self.sources_button = ElidedButton("Answer from: none", "Answer from",
                                           "Document collections this chat answers from",
                                           minimum_text="Answer…", widest=240)
        self.sources_menu = QMenu(self.sources_button)
        self.sources_menu.setAccessibleName("Collections")
        self.sources_button.setMenu(self.sources_menu)
        self.settings_button = ElidedButton("Chat settings…", "Chat settings",
                                            "System prompt and sampling for this chat")
        # The picker takes the room that is left (its names elide in the middle); the
        # buttons keep their whole labels until the window is very narrow.
        self.model_box.setMaximumWidth(560)  # wide enough for whole names, not a banner
        row.addWidget(self.model_box, 1)
        row.addStretch(0)
        # "Answer from" sits by the message box (the window places it): what the next
        # question is answered from belongs with the question, and leaves the picker room.
        for button in (self.models_button, self.documents_button, self.settings_button):
            row.addWidget(button)
        # The app menu (Import chats…, Settings…, About): without a menu bar on Linux and
        # Windows, actions that only had shortcuts could not be found at all.
        self.app_menu = QMenu(self)
        self.app_menu.setAccessibleName("Hearth menu")
        self.menu_button = QToolButton()
        self.menu_button.setText("☰")
        self.menu_button.setAccessibleName("Hearth menu")
        self.menu_button.setToolTip("Import chats, Settings, About")
        self.menu_button.setMenu(self.app_menu)
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.menu_button.setMinimumWidth(40)  # a target as wide as the other buttons' least
        row.addWidget(self.menu_button)

    def set_app_actions(self, actions: list[QAction]) -> None:
        self.app_menu.clear()
        for action in actions:
            self.app_menu.addAction(action)

    def controls(self) -> list[QWidget]:
        """In focus order."""
        return [self.model_box, self.models_button, self.documents_button,
                self.settings_button, self.menu_button]
