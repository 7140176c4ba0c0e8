"""The chat list in the real window: date groups, empty search, keys, width, empty chats."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QInputDialog, QMessageBox

from desktop.core.chat.conversations import GROUPS, date_group
from desktop.core.chat.sample_chats import seed_sample_chats
from desktop.core.context import AppContext
from tests.ui.window_fixtures import open_window, prepare

__all__ = ["open_window"]


def _seed(data_dir: Path) -> int:
    ctx = AppContext(data_dir)
    chat = seed_sample_chats(ctx)
    ctx.close()
    return chat


def _answer_modal(qtbot, act) -> None:  # noqa: ANN001
    """Run `act(dialog)` on the next modal dialog once it is up (a real dialog, driven)."""
    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, poll)
            return
        act(dialog)

    QTimer.singleShot(0, poll)


def test_date_groups_follow_the_calendar() -> None:
    now = dt.datetime(2026, 3, 10, 9, 0).timestamp()
    at = lambda *a: dt.datetime(*a).timestamp()  # noqa: E731
    assert date_group(at(2026, 3, 10, 0, 5), now) == "Today"
    assert date_group(at(2026, 3, 9, 23, 59), now) == "Yesterday"
    assert date_group(at(2026, 3, 4, 12), now) == "Previous 7 days"
    assert date_group(at(2026, 3, 2, 12), now) == "Older"


def test_groups_empty_search_and_escape(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    _seed(data_dir)
    window = open_window(data_dir)
    sidebar = window.sidebar
    headers = [r for r in sidebar.model.rows if isinstance(r, str)]
    assert headers == list(GROUPS)
    assert sidebar.model.rows[0] == "Today"
    assert not sidebar.model.flags(sidebar.model.index(0))  # a header cannot be selected
    sidebar.search.setText("zzz no such words")
    assert sidebar.model.items == [] and sidebar.empty_label.isVisible()
    assert "No chat matches" in sidebar.empty_label.text()
    sidebar.search.setFocus()
    qtbot.keyClick(sidebar.search, Qt.Key.Key_Escape)
    assert sidebar.search.text() == "" and not sidebar.empty_label.isVisible()
    assert len(sidebar.model.items) == 6


def test_delete_key_asks_and_defaults_to_keep(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    chat = _seed(data_dir)
    window = open_window(data_dir)
    window.open_conversation(chat)
    view = window.sidebar.view
    view.setFocus()
    defaults = []

    def press_enter(dialog) -> None:  # noqa: ANN001
        assert isinstance(dialog, QMessageBox)
        defaults.append(dialog.defaultButton().text())
        qtbot.keyClick(dialog, Qt.Key.Key_Return)  # the default answer

    _answer_modal(qtbot, press_enter)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert defaults == ["Keep"]
    assert chat in [c.id for c in window.ctx.chats.conversations()]

    _answer_modal(qtbot, lambda d: d.button(QMessageBox.StandardButton.Yes).click())
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert chat not in [c.id for c in window.ctx.chats.conversations()]
    assert window.current_id is None


def test_f2_renames(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    chat = _seed(data_dir)
    window = open_window(data_dir)
    window.open_conversation(chat)
    window.sidebar.view.setFocus()

    def rename(dialog) -> None:  # noqa: ANN001
        assert isinstance(dialog, QInputDialog)
        dialog.setTextValue("Notes, moved")
        dialog.accept()

    _answer_modal(qtbot, rename)
    qtbot.keyClick(window.sidebar.view, Qt.Key.Key_F2)
    assert window.ctx.chats.conversation(chat).title == "Notes, moved"
    assert "Notes, moved" in [c.title for c in window.sidebar.model.items]


def test_width_is_remembered(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    window = open_window(data_dir, (1000, 700))
    window.splitter.setSizes([310, 690])
    qtbot.waitUntil(lambda: window.splitter.sizes()[0] == 310)
    window.close()
    window.ctx.close()
    again = open_window(data_dir, (1000, 700))
    qtbot.waitUntil(lambda: again.splitter.sizes()[0] == 310)


def test_an_empty_new_chat_is_not_left_behind(qtbot, open_window, data_dir: Path) -> None:  # noqa: ANN001
    prepare(data_dir, None)
    chat = _seed(data_dir)
    window = open_window(data_dir)
    ctx = window.ctx
    collection = ctx.documents.create_collection("Recipes")
    window.new_chat()
    window.set_collection(collection, True)  # makes the chat (it answers from Recipes)
    empty = window.current_id
    assert empty is not None and empty in [c.id for c in window.sidebar.model.items]
    window.open_conversation(chat)
    assert empty not in [c.id for c in ctx.chats.conversations()]
    assert empty not in [c.id for c in window.sidebar.model.items]
    # A chat with messages stays.
    window.new_chat()
    assert chat in [c.id for c in ctx.chats.conversations()]
