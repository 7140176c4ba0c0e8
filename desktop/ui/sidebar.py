"""The conversation list: a thin Qt model over core Conversation rows grouped by date (Today,
Yesterday, Previous 7 days, Older), with search, keyboard actions and a busy mark."""

from __future__ import annotations

import sys
import time
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QIcon,
    QKeyEvent,
    QPainter,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.chat.conversations import Conversation, date_group
from desktop.ui import theme

Index = QModelIndex | QPersistentModelIndex
BUSY_TEXT = "writing a reply…"


def _dot(color: QColor, size: int = 10) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(color)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


class ConversationListModel(QAbstractListModel):
    """Rows are group headers (str, not selectable) and conversations."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Conversation | str] = []
        self.busy: int | None = None

    @property
    def items(self) -> list[Conversation]:
        return [r for r in self.rows if isinstance(r, Conversation)]

    def set_items(self, items: list[Conversation], grouped: bool = True,
                  now: float | None = None) -> None:
        self.beginResetModel()
        self.rows = []
        last = None
        for item in items:
            group = date_group(item.updated_at, now) if grouped else None
            if group and group != last:
                self.rows.append(group)
                last = group
            self.rows.append(item)
        self.endResetModel()

    def set_busy(self, conversation_id: int | None) -> None:
        old, self.busy = self.busy, conversation_id
        for cid in (old, conversation_id):
            row = self.row_of(cid) if cid is not None else -1
            if row >= 0:
                index = self.index(row)
                self.dataChanged.emit(index, index)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if index.isValid() and isinstance(self.rows[index.row()], str):
            return Qt.ItemFlag.NoItemFlags  # headers: skipped by the arrows, never selected
        return super().flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if isinstance(row, str):
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
                return row
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
                return font
            if role == Qt.ItemDataRole.ForegroundRole:
                # Disabled rows would draw in the faint disabled colour: use readable text.
                return theme.readable(theme.TONES["info"], _window_colour())
            return None
        busy = row.id == self.busy
        title = row.title or "New chat"
        if role == Qt.ItemDataRole.DisplayRole:
            return title
        if role == Qt.ItemDataRole.UserRole:
            return row.id
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{title} — {BUSY_TEXT}" if busy else title
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{title}, {BUSY_TEXT}" if busy else title
        if role == Qt.ItemDataRole.DecorationRole and busy:
            return _dot(theme.tone("info"))
        return None

    def row_of(self, conversation_id: int) -> int:
        for row, item in enumerate(self.rows):
            if isinstance(item, Conversation) and item.id == conversation_id:
                return row
        return -1


def _window_colour() -> QColor:
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    return QApplication.palette().color(QPalette.ColorRole.Window)


class SearchField(QLineEdit):
    """Esc clears the search (before the window's Esc, which stops a reply, sees it)."""

    def event(self, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and event.key() == Qt.Key.Key_Escape and self.text()):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Escape and self.text():
            self.clear()
            return
        super().keyPressEvent(event)


class ChatList(QListView):
    """The list of chats. Keys on it: Delete deletes (after asking), F2 renames; on macOS
    Backspace deletes as in Finder."""

    key_pressed = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.key_actions: dict[Qt.Key, Any] = {}

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        key = Qt.Key(event.key())
        if key == Qt.Key.Key_Backspace and sys.platform == "darwin":
            key = Qt.Key.Key_Delete
        if key in self.key_actions and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.key_pressed.emit(int(key.value))
            return
        super().keyPressEvent(event)


class Sidebar(QWidget):
    new_requested = Signal()
    selected = Signal(int)
    rename_requested = Signal(int)
    delete_requested = Signal(int)
    export_requested = Signal(int)
    search_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("sidebar")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new chat (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested.emit)
        layout.addWidget(self.new_button)
        self.search = SearchField()
        self.search.setPlaceholderText("Search chats")
        self.search.setAccessibleName("Search chats")
        self.search.setToolTip("Search titles and messages (Ctrl+F); Esc clears")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.search_changed.emit)
        layout.addWidget(self.search)
        self.model = ConversationListModel()
        self.view = ChatList()
        self.view.setModel(self.model)
        self.view.setAccessibleName("Chats")
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setIconSize(QSize(10, 10))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        layout.addWidget(self.view, 1)
        self.empty_label = QLabel()
        self.empty_label.setWordWrap(True)
        self.empty_label.setAccessibleName("Search result")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.empty_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.empty_label.hide()
        layout.addWidget(self.empty_label, 1)
        self.view.key_actions = {Qt.Key.Key_Delete: self.delete_requested,
                                 Qt.Key.Key_F2: self.rename_requested}
        self.view.key_pressed.connect(self._emit_current)
        self.setMinimumWidth(150)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(230, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(150, super().minimumSizeHint().height())

    def set_conversations(self, items: list[Conversation], current: int | None,
                          query: str = "") -> None:
        blocker = self.view.selectionModel().blockSignals(True)
        self.model.set_items(items, now=time.time())
        row = self.model.row_of(current) if current is not None else -1
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))
        else:
            self.view.clearSelection()
            self.view.setCurrentIndex(QModelIndex())
        self.view.selectionModel().blockSignals(blocker)
        empty = not items
        self.empty_label.setText(f"No chat matches “{query}”.\nEsc clears the search."
                                 if query else "Your chats will be listed here.")
        self.empty_label.setVisible(empty)
        self.view.setVisible(not empty)

    def current_id(self) -> int | None:
        index = self.view.currentIndex()
        value = index.data(Qt.ItemDataRole.UserRole) if index.isValid() else None
        return int(value) if value is not None else None

    def _emit_current(self, signal: Any) -> None:
        if isinstance(signal, int):  # a key from ChatList
            signal = self.view.key_actions[Qt.Key(signal)]
        conversation_id = self.current_id()
        if conversation_id is not None:
            signal.emit(conversation_id)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and current.data(Qt.ItemDataRole.UserRole) is not None:
            self.selected.emit(int(current.data(Qt.ItemDataRole.UserRole)))

    def _menu(self, pos: Any) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid() or index.data(Qt.ItemDataRole.UserRole) is None:
            return
        conversation_id = int(index.data(Qt.ItemDataRole.UserRole))
        menu = QMenu(self)
        menu.addAction("Rename…\tF2", lambda: self.rename_requested.emit(conversation_id))
        menu.addAction("Export…", lambda: self.export_requested.emit(conversation_id))
        menu.addAction("Delete…\tDel", lambda: self.delete_requested.emit(conversation_id))
        menu.exec(self.view.viewport().mapToGlobal(pos))
