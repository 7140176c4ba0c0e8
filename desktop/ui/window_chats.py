"""The main window's chat list side: which chat is shown, the sidebar's list, and the chat
actions (new, open, rename, export, delete). A chat whose reply is being written may be left
and opened again: the reply goes on and shows live on return."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from desktop.core.chat import conversations as chats
from desktop.core.chat.conversations import Message
from desktop.core.errors import HearthError
from desktop.ui.window_model import BUSY

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow


class ChatList(QObject):
    """Owns the sidebar's list and what the window shows (the chat, or the start panel);
    the shown chat's id stays on the window (window.current_id), which all parts read."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.confirm_box: QMessageBox | None = None  # the last delete question (for tests)

    def refresh_conversations(self) -> None:
        w = self.window
        query = w.sidebar.search.text().strip()
        w.sidebar.set_conversations(chats.list_conversations(w.ctx, query), w.current_id, query)
        w.sidebar.model.set_busy(w.streaming_id)

    def show_empty(self) -> None:
        w = self.window
        w.stack.setCurrentWidget(w.start_panel)
        w.replies.update_meter([])
        w.context_meter.hide()  # no chat, nothing used

    def _leave_current(self, next_id: int | None) -> None:
        """Before showing another chat: the reply view stops drawing (the reply goes on),
        and a chat left without a single message is not kept as an empty "New chat"."""
        w = self.window
        previous = w.current_id
        if previous is not None and previous == w.streaming_id:
            w.chat_view.end_stream(None)
        if previous is not None and previous != next_id and previous != w.streaming_id:
            chats.discard_if_empty(w.ctx, previous)
        w.file_chips.clear()
        w.clear_error()
        w.replies.editing = False

    def new_chat(self) -> None:
        w = self.window
        self._leave_current(None)
        w.current_id = None
        w.chat_view.clear()
        self.show_empty()
        self.refresh_conversations()
        w.chat_documents.update_sources_button()
        w.composer.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        w = self.window
        if conversation_id != w.current_id:
            self._leave_current(conversation_id)
        w.current_id = conversation_id
        w.ctx.settings.set("last_conversation", conversation_id)
        messages = chats.messages(w.ctx, conversation_id)
        if conversation_id == w.streaming_id:
            self._show_live(messages)
        else:
            w.chat_view.set_messages(messages)
        w.stack.setCurrentWidget(w.chat_view)
        w.replies.update_meter(messages)
        w.context_meter.show()
        w.chat_documents.update_sources_button()
        self.refresh_conversations()
        interrupted = [m for m in messages if m.state == "interrupted"]
        if interrupted and interrupted[-1] is messages[-1]:
            w.chat_view.set_notice("The last reply was cut off when Hearth closed. "
                                   "Continue it from where it stopped, or Regenerate it.")

    def _show_live(self, messages: list[Message]) -> None:
        """Back on the chat whose reply is being written: what is saved, then the reply so
        far, streaming on."""
        w = self.window
        replies = w.replies
        shown = [m for m in messages if m.state != "streaming"]
        w.chat_view.set_messages(shown)
        w.chat_view.begin_stream(Message(0, replies.streaming_id or 0, "assistant", "",
                                         "streaming", time.time()))
        if replies.live_reasoning:
            w.chat_view.append_reasoning(replies.live_reasoning)
            w.chat_view.reasoning_since = replies.thinking_since  # the count goes on
        if replies.live_text:
            w.chat_view.append(replies.live_text)

    def ensure_conversation(self) -> int:
        """The shown chat's id, making a new chat first when none is shown."""
        w = self.window
        if w.current_id is None:
            conversation = w.service.new_conversation()
            w.current_id = conversation.id
            w.ctx.settings.set("last_conversation", conversation.id)
            w.chat_view.clear()
            w.stack.setCurrentWidget(w.chat_view)
            w.context_meter.show()
            self.refresh_conversations()
        return w.current_id

    def rename_conversation(self, conversation_id: int) -> None:
        w = self.window
        current = chats.conversation(w.ctx, conversation_id).title
        title, ok = QInputDialog.getText(w, "Rename chat", "Title:", text=current)
        if not ok:
            return
        try:
            chats.rename(w.ctx, conversation_id, title)
        except HearthError as exc:
            w.show_error(exc)
            return
        self.refresh_conversations()

    def export_conversation(self, conversation_id: int, path: str | None = None) -> None:
        w = self.window
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                w, "Export chat", str(Path.home() / chats.export_name(w.ctx, conversation_id)),
                "Markdown (*.md);;JSON (*.json)")
            if not path:
                return
        try:
            written = chats.export(w.ctx, conversation_id, path)
        except HearthError as exc:
            w.show_error(exc)
            return
        w.chat_view.set_notice(f"Exported to {written}")

    def confirm_delete(self, title: str) -> bool:
        """Ask before deleting; the safe answer (No) is the default, so Enter keeps the chat."""
        box = QMessageBox(QMessageBox.Icon.Question, "Delete chat",
                          f"Delete “{title}” and all its messages? This cannot be undone.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                          self.window)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setEscapeButton(QMessageBox.StandardButton.No)
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        box.button(QMessageBox.StandardButton.No).setText("Keep")
        self.confirm_box = box  # reachable by tests driving the real dialog
        return box.exec() == QMessageBox.StandardButton.Yes

    def delete_conversation(self, conversation_id: int, confirm: bool = True) -> None:
        w = self.window
        if conversation_id == w.streaming_id:
            w.show_error("Stop the reply (Esc) before deleting this chat.", BUSY)
            return
        title = chats.conversation(w.ctx, conversation_id).title or "this chat"
        if confirm and not w.confirm_delete(title):
            return
        w.service.delete_conversation(conversation_id)
        if conversation_id == w.current_id:
            w.current_id = None
            self.new_chat()
        self.refresh_conversations()
