"""The main window's keyboard: standard shortcuts and a focus order that follows the screen.

Settings… (Ctrl+,) and About are app-wide actions (desktop/ui/app_actions.py); they are
not repeated here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


def _action(window: MainWindow, text: str, keys: QKeySequence | QKeySequence.StandardKey,
            slot: object) -> QAction:
    action = QAction(text, window)
    action.setShortcut(QKeySequence(keys))
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(slot)  # type: ignore[arg-type]
    window.addAction(action)
    return action


def focus_search(window: MainWindow) -> None:
    window.sidebar.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
    window.sidebar.search.selectAll()


def install_shortcuts(window: MainWindow) -> dict[str, QAction]:
    """Ctrl/Cmd+N new chat, Ctrl/Cmd+F search chats, Esc stops the reply, Ctrl/Cmd+L the
    message box (as in browsers and other chat apps)."""
    return {
        "new": _action(window, "New chat", QKeySequence.StandardKey.New, window.new_chat),
        "find": _action(window, "Search chats", QKeySequence.StandardKey.Find,
                        lambda: focus_search(window)),
        "stop": _action(window, "Stop the reply", QKeySequence(Qt.Key.Key_Escape), window.stop),
        "composer": _action(window, "Go to the message box", QKeySequence("Ctrl+L"),
                            lambda: window.composer.setFocus(Qt.FocusReason.ShortcutFocusReason)),
    }


def focus_chain(window: MainWindow) -> list[QWidget]:
    """Sidebar (new, search, list), toolbar, conversation, "Answer from", message box, Send,
    Stop."""
    return [window.sidebar.new_button, window.sidebar.search, window.sidebar.view,
            *window.toolbar.controls(), window.chat_view, window.sources_button,
            window.composer, window.send_button, window.stop_button]


def set_focus_order(window: MainWindow) -> None:
    chain = focus_chain(window)
    for first, second in zip(chain, chain[1:], strict=False):
        QWidget.setTabOrder(first, second)
